#!/usr/bin/python3
"""Self-checks of the PyTorch peer (bench/torch_peer.py), so the oracle is itself checked
against something independent before the C model is compared with it:

  1. autograd vs central finite differences in float64 on a micro config, every fusion mode:
     torch.autograd.gradcheck on a few parameter tensors (attention, cross-attention,
     embeddings, LayerNorm, fusion), and a directional difference for every parameter tensor;
  2. the attention, block and GELU pieces against torch.nn.MultiheadAttention and
     F.gelu(approximate='tanh') (a different implementation of the same maths);
  3. the spec's masking rules: a query with all keys masked gets zero output (no NaN), a
     CrossBlock is the identity for a sample without its context, the masked mean of an empty
     modality is 0, an absent modality's contents never reach the logits, samples are
     independent of each other;
  4. the committed golden files: reproduced from their inputs and weights (regression), and
     the safetensors writer round-trips.

Exit 0 when every check passes, 1 on a failure, 77 (ctest SKIP_RETURN_CODE) without torch.
"""

import math
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench"))

try:
    import numpy as np
    import torch
    import yaml  # noqa: F401  (torch_peer needs it)
except ImportError as e:
    print("SKIP: %s (install python3-torch, python3-numpy, python3-yaml)" % e)
    sys.exit(77)

import torch_peer as tp  # noqa: E402

tp.load_torch()
F = torch.nn.functional
torch.set_num_threads(1)

MICRO = {"name": "fusion-micro", "width": 8, "heads": 2, "mlp": 12, "layers": 1, "fusion": "cross",
         "tasks": 2, "image": {"size": 8, "channels": 1, "patch": 4},
         "text": {"length": 6, "vocab": 20}, "ehr": {"length": 7, "codes": 15, "values": 11, "times": 5}}

failures = []


def check(ok, what):
    print("%s %s" % ("ok  " if ok else "FAIL", what))
    if not ok:
        failures.append(what)


def micro(fusion, seed=5, B=8):
    c = tp.config_from_dict(MICRO, fusion)
    w = tp.init_golden_weights(c, np.random.default_rng([seed, 0]))
    x = tp.make_inputs(c, np.random.default_rng([seed, 1]), B)
    tp.check_inputs(c, x, "micro")
    p, inp = tp.to_torch(c, w, x, torch.float64, True)
    return c, p, inp


def loss_of(c, p, inp):
    return tp.loss_fn(tp.forward(p, c, inp), inp["labels"])


def check_gradients(fusion):
    c, p, inp = micro(fusion)
    names = [n for n, _, _ in tp.param_table(c)]
    # a few tensors with torch.autograd.gradcheck (every element by central differences)
    picks = {"cross": ["txt.blocks.0.attn.qkv.weight", "fuse.x_img.attn.q.weight",
                       "fuse.x_txt.attn.kv.weight", "fuse.block.attn.qkv.weight",
                       "fuse.block.ln1.weight", "ehr.val", "fuse.mod", "img.patch.weight"],
             "early": ["fuse.mlp.fc.weight", "img.blocks.0.attn.qkv.weight", "ehr.time"],
             "late": ["fuse.w", "head.txt.weight", "ehr.blocks.0.ln1.bias"]}[fusion]
    for name in picks:
        def f(t, name=name):
            q = dict(p)
            q[name] = t
            return loss_of(c, q, inp)
        t = p[name].detach().clone().requires_grad_(True)
        ok = torch.autograd.gradcheck(f, (t,), eps=1e-6, atol=1e-8, rtol=1e-5, raise_exception=False)
        check(ok, "%s: gradcheck %s" % (fusion, name))
    # every tensor along a random direction: (L(p+eps v) - L(p-eps v)) / 2eps == <grad, v>
    loss = loss_of(c, p, inp)
    grads = torch.autograd.grad(loss, [p[n] for n in names], allow_unused=True)
    g = torch.Generator().manual_seed(11)
    worst, eps = 0.0, 1e-5
    zero_grads = []
    for n, gr in zip(names, grads):
        gr = torch.zeros_like(p[n]) if gr is None else gr
        if float(gr.abs().max()) == 0.0:
            zero_grads.append(n)
        v = torch.randn(p[n].shape, generator=g, dtype=torch.float64)
        with torch.no_grad():
            q = dict(p)
            q[n] = p[n] + eps * v
            lp = loss_of(c, q, inp)
            q[n] = p[n] - eps * v
            lm = loss_of(c, q, inp)
        fd = float((lp - lm) / (2 * eps))
        an = float((gr * v).sum())
        err = abs(fd - an) / max(abs(an), abs(fd), 1e-6)
        worst = max(worst, err)
        if err > 1e-5:
            check(False, "%s: directional difference %s: fd %.9g autograd %.9g" % (fusion, n, fd, an))
    check(worst <= 1e-5, "%s: directional differences on all %d tensors (worst rel %.1e)"
          % (fusion, len(names), worst))
    check(not zero_grads, "%s: every parameter gets a gradient (zero: %s)" % (fusion, zero_grads))


def check_attention_vs_torch():
    torch.manual_seed(0)
    B, L, d, h = 3, 5, 8, 2
    mha = torch.nn.MultiheadAttention(d, h, batch_first=True, dtype=torch.float64)
    x = torch.randn(B, L, d, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 0, 1, 1, 0], [0, 0, 0, 1, 0]], dtype=torch.bool)
    ref, _ = mha(x, x, x, key_padding_mask=~mask, need_weights=False)
    p = {"a.attn.qkv.weight": mha.in_proj_weight, "a.attn.qkv.bias": mha.in_proj_bias,
         "a.attn.proj.weight": mha.out_proj.weight, "a.attn.proj.bias": mha.out_proj.bias}
    qkv = tp.linear(p, "a.attn.qkv", x)
    out = tp.linear(p, "a.attn.proj", tp.attend(qkv[..., :d], qkv[..., d:2 * d], qkv[..., 2 * d:], mask, h))
    check(torch.allclose(out, ref, atol=1e-12, rtol=1e-10),
          "attention (fused qkv q,k,v order, heads in order, key mask) == nn.MultiheadAttention")
    # cross-attention: q from x, k and v from a context of another length
    ctx = torch.randn(B, 4, d, dtype=torch.float64)
    cmask = torch.tensor([[1, 1, 0, 1], [1, 0, 0, 0], [0, 1, 1, 1]], dtype=torch.bool)
    ref, _ = mha(x, ctx, ctx, key_padding_mask=~cmask, need_weights=False)
    W, bias = mha.in_proj_weight, mha.in_proj_bias
    q = F.linear(x, W[:d], bias[:d])
    kv = F.linear(ctx, W[d:], bias[d:])
    out = F.linear(tp.attend(q, kv[..., :d], kv[..., d:], cmask, h), mha.out_proj.weight, mha.out_proj.bias)
    check(torch.allclose(out, ref, atol=1e-12, rtol=1e-10), "cross-attention (kv = k then v) == nn.MultiheadAttention")
    z = torch.linspace(-6, 6, 101, dtype=torch.float64)
    formula = 0.5 * z * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z ** 3)))
    check(torch.allclose(tp.gelu(z), formula, atol=1e-14), "GELU == the spec's tanh formula")
    img = torch.arange(2 * 1 * 8 * 8, dtype=torch.float64).reshape(2, 1, 8, 8)
    pt = tp.patchify(img, 4)
    want = img[1, 0, 4:8, 0:4].reshape(-1)  # sample 1, patch row 1, patch column 0 -> patch 2
    check(pt.shape == (2, 4, 16) and torch.equal(pt[1, 2], want), "patchify: row-major patches, row-major inside")


def check_masking():
    torch.manual_seed(1)
    B, Lq, Lk, d, h = 2, 3, 4, 8, 2
    q, k, v = (torch.randn(B, n, d, dtype=torch.float64, requires_grad=True) for n in (Lq, Lk, Lk))
    mask = torch.tensor([[0, 0, 0, 0], [1, 0, 1, 0]], dtype=torch.bool)
    out = tp.attend(q, k, v, mask, h)
    check(torch.equal(out[0], torch.zeros(Lq, d, dtype=torch.float64)), "all keys masked -> attention output exactly 0")
    out.sum().backward()
    fin = all(bool(torch.isfinite(t.grad).all()) for t in (q, k, v))
    check(fin and float(q.grad[0].abs().max()) == 0.0, "all keys masked -> finite, zero gradients")

    c, p, inp = micro("cross")
    h_img, h_txt, h_ehr, tmask, emask, present = tp.encoders(p, c, inp)
    y = tp.cross_block(p, "fuse.x_txt", h_txt, h_ehr, emask, present[:, 2], c["heads"])
    absent = ~present[:, 2]
    check(bool(absent.any()) and torch.equal(y[absent], h_txt[absent]) and not torch.equal(y[~absent], h_txt[~absent]),
          "CrossBlock is exactly the identity for samples without context, not for the others")
    mm = tp.masked_mean(h_txt, tmask)
    check(torch.equal(mm[~present[:, 1]], torch.zeros_like(mm[~present[:, 1]])), "masked mean of an empty note is 0")

    for fusion in tp.FUSIONS:
        c, p, inp = micro(fusion)
        with torch.no_grad():
            base = tp.forward(p, c, inp)
            junk = dict(inp)
            g = torch.Generator().manual_seed(3)
            noimg = inp["image_present"] < 0.5
            junk["image"] = torch.where(noimg[:, None, None, None],
                                        torch.randn(inp["image"].shape, generator=g, dtype=torch.float64), inp["image"])
            noehr = ~(inp["ehr_code"] != 0).any(1)
            for n, hi in (("ehr_val", c["ehr_values"]), ("ehr_time", c["ehr_times"])):
                r = torch.randint(0, hi, inp[n].shape, generator=g)
                junk[n] = torch.where(noehr[:, None], r, inp[n])
            other = tp.forward(p, c, junk)
            check(torch.equal(base, other), "%s: contents of absent image / empty record never reach the logits" % fusion)
            one = {n: t[5:6] for n, t in inp.items()}
            check(torch.allclose(tp.forward(p, c, one)[0], base[5], atol=1e-13, rtol=0),
                  "%s: a sample's logits do not depend on the rest of the batch" % fusion)
            x = {n: t.detach().numpy() for n, t in inp.items()}
            x = {n: (a.astype(np.int32) if n.startswith(("text", "ehr")) else a.astype(np.float32)) for n, a in x.items()}
            w = {n: t.detach().numpy().astype(np.float32) for n, t in p.items()}
            o64 = tp.run(c, w, x, torch.float64, True)
            o32 = tp.run(c, w, x, torch.float32, True)
            rows = tp.compare(o64, o32, 1e-4)
            check(all(r[2] for r in rows), "%s: float32 run within 1e-4 of float64 (worst %.1e)"
                  % (fusion, max(r[1] for r in rows)))


def check_golden_files():
    gdir = os.path.join(HERE, "golden")
    cfg = tp.load_config(os.path.join(ROOT, "configs", "model-tiny.yaml"))
    for fusion in tp.FUSIONS:
        stem = os.path.join(gdir, "tiny_%s_" % fusion)
        if not os.path.exists(stem + "expected.safetensors"):
            check(False, "golden file %sexpected.safetensors exists" % stem)
            continue
        c = dict(cfg, fusion=fusion)
        w, x = tp.st_load(stem + "weights.safetensors"), tp.st_load(stem + "inputs.safetensors")
        tp.check_weights(c, w, "weights")
        tp.check_inputs(c, x, "inputs")
        exp = tp.st_load(stem + "expected.safetensors")
        want = ["logits", "loss"] + ["grad." + n for n, _, _ in tp.param_table(c)]
        check(list(exp.keys()) == want, "tiny_%s: expected holds logits, loss and grad.<name> in spec order" % fusion)
        got = tp.run(c, w, x, torch.float64, True)
        rows = tp.compare(exp, got, 1e-6)
        check(all(r[2] for r in rows), "tiny_%s: golden reproduced from its inputs and weights (worst %.1e)"
              % (fusion, max(r[1] for r in rows)))
        pres = np.stack([x["image_present"] > 0.5, (x["text_ids"] != 0).any(1), (x["ehr_code"] != 0).any(1)], 1)
        pats = {tuple(int(v) for v in r) for r in pres}
        check(len(pats) == 7, "tiny_%s: inputs cover all 7 presence patterns" % fusion)
    with tempfile.TemporaryDirectory() as d:
        a = {"f": np.arange(6, dtype=np.float32).reshape(2, 3), "i": np.array([-1, 7], np.int32),
             "s": np.array([2.5], np.float32)}
        tp.st_save(os.path.join(d, "t.safetensors"), a, {"k": "v"})
        b = tp.st_load(os.path.join(d, "t.safetensors"))
        raw = open(os.path.join(d, "t.safetensors"), "rb").read()
        n = int.from_bytes(raw[:8], "little")
        check(list(b) == list(a) and all(np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)
              and n % 8 == 0 and len(raw) == 8 + n + 4 * 9, "safetensors write/read round trip")


def main():
    check_attention_vs_torch()
    check_masking()
    for fusion in tp.FUSIONS:
        check_gradients(fusion)
    check_golden_files()
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("all torch peer checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
