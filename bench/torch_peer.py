#!/usr/bin/python3
"""Independent PyTorch peer of the fedfuse fusion model (../shared/spec/model.md).

Written from the spec alone, never from the C code, so that the two implementations can be
compared tensor by tensor. Subcommands:

  golden  --config C --out DIR --seed S --batch B [--fusion F] [--name N]
          draws weights (std 0.1) and inputs with mixed presence patterns, computes logits,
          loss and every gradient in float64, and writes N_inputs / N_weights / N_expected
          .safetensors (float32 / int32) into DIR.
  forward --config C --weights W --inputs I --out O [--fusion F] [--dtype f64|f32]
  grad    ... as forward, plus grad.<name> for every parameter (spec order).
  compare --expected E --actual A [--tol 1e-4]
          per-tensor max|a-e| / max|e| for every tensor of E; exit 1 when one exceeds tol.
  bench   --config C --threads N [--batch 32] [--steps S]
          float32 training (fwd+bwd+AdamW) and inference samples/s, peak RSS.

Run with /usr/bin/python3 (Debian's python3-torch, numpy, yaml). torch is imported lazily so
that `bench` can set the BLAS/OpenMP thread environment before the libraries load.
"""

import argparse
import json
import math
import os
import resource
import sys
import time

import numpy as np
import yaml

torch = None  # imported by load_torch() after the thread environment is set
F = None

FUSIONS = ("cross", "early", "late")
MOD_NAMES = ("img", "txt", "ehr")


def load_torch():
    global torch, F
    if torch is None:
        import torch as _torch
        import torch.nn.functional as _F
        torch, F = _torch, _F
    return torch


class PeerError(Exception):
    """Bad input: printed as one line, exit 2."""


# ---------------------------------------------------------------------------------------------
# safetensors (json + numpy; Debian has no python3-safetensors)
# ---------------------------------------------------------------------------------------------

_DT_TO_NP = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "I32": np.dtype("<i4"),
             "I64": np.dtype("<i8"), "U8": np.dtype("u1")}
_NP_TO_DT = {np.dtype("float32"): "F32", np.dtype("float64"): "F64", np.dtype("int32"): "I32",
             np.dtype("int64"): "I64", np.dtype("uint8"): "U8"}


def st_save(path, tensors, metadata=None):
    """Writes an ordered dict name -> numpy array. Data is laid out contiguously in the given
    order; the header is padded with spaces to a multiple of 8 bytes. Written to a temp file
    and renamed, so a reader never sees half a file."""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        dt = _NP_TO_DT.get(arr.dtype)
        if dt is None:
            raise PeerError("%s: tensor %s: unsupported dtype %s" % (path, name, arr.dtype))
        raw = arr.astype(_DT_TO_NP[dt], copy=False).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def st_load(path):
    """Reads a safetensors file into an ordered dict name -> numpy array (copies)."""
    try:
        with open(path, "rb") as f:
            buf = f.read()
    except OSError as e:
        raise PeerError("%s: cannot open: %s" % (path, e.strerror))
    if len(buf) < 8:
        raise PeerError("%s: too short for a safetensors header" % path)
    n = int.from_bytes(buf[:8], "little")
    if n > len(buf) - 8:
        raise PeerError("%s: header length %d exceeds the file" % (path, n))
    try:
        header = json.loads(buf[8:8 + n].decode("utf-8"))
    except ValueError as e:
        raise PeerError("%s: header: %s" % (path, e))
    data = memoryview(buf)[8 + n:]
    out = {}
    for name, ent in header.items():
        if name == "__metadata__":
            continue
        dt = _DT_TO_NP.get(ent.get("dtype"))
        if dt is None:
            raise PeerError("%s: tensor %s: unsupported dtype %r" % (path, name, ent.get("dtype")))
        shape = tuple(int(s) for s in ent["shape"])
        b, e = ent["data_offsets"]
        count = int(np.prod(shape)) if shape else 1
        if e - b != count * dt.itemsize or e > len(data):
            raise PeerError("%s: tensor %s: data_offsets [%d, %d] do not match shape %s"
                            % (path, name, b, e, list(shape)))
        out[name] = np.frombuffer(data[b:e], dtype=dt).reshape(shape).copy()
    return out


# ---------------------------------------------------------------------------------------------
# Config and parameter table
# ---------------------------------------------------------------------------------------------

def load_config(path, fusion=None):
    try:
        with open(path) as f:
            raw = yaml.safe_load(f)
    except OSError as e:
        raise PeerError("%s: cannot open: %s" % (path, e.strerror))
    except yaml.YAMLError as e:
        raise PeerError("%s: not valid YAML: %s" % (path, str(e).replace("\n", " ")))
    return config_from_dict(raw, fusion, path)


def config_from_dict(raw, fusion=None, path="config"):
    """The model config (the YAML keys of configs/model-*.yaml) as a flat dict."""

    def get(d, key, where):
        if not isinstance(d, dict) or key not in d:
            raise PeerError("%s: missing key '%s'" % (path, where))
        return d[key]

    c = {"name": str(get(raw, "name", "name"))}
    for k in ("width", "heads", "mlp", "layers", "tasks"):
        c[k] = int(get(raw, k, k))
    c["fusion"] = str(fusion or get(raw, "fusion", "fusion"))
    img, txt, ehr = get(raw, "image", "image"), get(raw, "text", "text"), get(raw, "ehr", "ehr")
    for k in ("size", "channels", "patch"):
        c["img_" + k] = int(get(img, k, "image." + k))
    for k in ("length", "vocab"):
        c["txt_" + k] = int(get(txt, k, "text." + k))
    for k in ("length", "codes", "values", "times"):
        c["ehr_" + k] = int(get(ehr, k, "ehr." + k))
    if c["fusion"] not in FUSIONS:
        raise PeerError("%s: fusion: '%s' is not one of cross|early|late" % (path, c["fusion"]))
    if c["width"] % c["heads"]:
        raise PeerError("%s: width %d is not a multiple of heads %d" % (path, c["width"], c["heads"]))
    if c["img_size"] % c["img_patch"]:
        raise PeerError("%s: image.size %d is not a multiple of image.patch %d"
                        % (path, c["img_size"], c["img_patch"]))
    c["n_patches"] = (c["img_size"] // c["img_patch"]) ** 2
    c["patch_dim"] = c["img_channels"] * c["img_patch"] ** 2
    return c


def _block_params(prefix, d, m):
    return [
        (prefix + ".ln1.weight", (d,), "ln_w"), (prefix + ".ln1.bias", (d,), "ln_b"),
        (prefix + ".attn.qkv.weight", (3 * d, d), "lin_w"), (prefix + ".attn.qkv.bias", (3 * d,), "lin_b"),
        (prefix + ".attn.proj.weight", (d, d), "lin_w"), (prefix + ".attn.proj.bias", (d,), "lin_b"),
        (prefix + ".ln2.weight", (d,), "ln_w"), (prefix + ".ln2.bias", (d,), "ln_b"),
        (prefix + ".mlp.fc.weight", (m, d), "lin_w"), (prefix + ".mlp.fc.bias", (m,), "lin_b"),
        (prefix + ".mlp.proj.weight", (d, m), "lin_w"), (prefix + ".mlp.proj.bias", (d,), "lin_b"),
    ]


def _cross_params(prefix, d, m):
    return [
        (prefix + ".ln_q.weight", (d,), "ln_w"), (prefix + ".ln_q.bias", (d,), "ln_b"),
        (prefix + ".ln_kv.weight", (d,), "ln_w"), (prefix + ".ln_kv.bias", (d,), "ln_b"),
        (prefix + ".attn.q.weight", (d, d), "lin_w"), (prefix + ".attn.q.bias", (d,), "lin_b"),
        (prefix + ".attn.kv.weight", (2 * d, d), "lin_w"), (prefix + ".attn.kv.bias", (2 * d,), "lin_b"),
        (prefix + ".attn.proj.weight", (d, d), "lin_w"), (prefix + ".attn.proj.bias", (d,), "lin_b"),
        (prefix + ".ln2.weight", (d,), "ln_w"), (prefix + ".ln2.bias", (d,), "ln_b"),
        (prefix + ".mlp.fc.weight", (m, d), "lin_w"), (prefix + ".mlp.fc.bias", (m,), "lin_b"),
        (prefix + ".mlp.proj.weight", (d, m), "lin_w"), (prefix + ".mlp.proj.bias", (d,), "lin_b"),
    ]


def param_table(c):
    """[(name, shape, kind)] in spec order: each encoder's inputs, blocks and ln_f (img, txt,
    ehr), then the fusion parameters, then the head(s). kind drives init and weight decay:
    lin_w (Linear weight, decayed), lin_b, ln_w, ln_b, emb (embeddings, pos, mod), gate."""
    d, m, K, L = c["width"], c["mlp"], c["tasks"], c["layers"]
    t = [("img.patch.weight", (d, c["patch_dim"]), "lin_w"), ("img.patch.bias", (d,), "lin_b"),
         ("img.pos", (c["n_patches"], d), "emb")]
    t += [p for i in range(L) for p in _block_params("img.blocks.%d" % i, d, m)]
    t += [("img.ln_f.weight", (d,), "ln_w"), ("img.ln_f.bias", (d,), "ln_b")]
    t += [("txt.tok", (c["txt_vocab"], d), "emb"), ("txt.pos", (c["txt_length"], d), "emb")]
    t += [p for i in range(L) for p in _block_params("txt.blocks.%d" % i, d, m)]
    t += [("txt.ln_f.weight", (d,), "ln_w"), ("txt.ln_f.bias", (d,), "ln_b")]
    t += [("ehr.code", (c["ehr_codes"], d), "emb"), ("ehr.val", (c["ehr_values"], d), "emb"),
          ("ehr.time", (c["ehr_times"], d), "emb"), ("ehr.pos", (c["ehr_length"], d), "emb")]
    t += [p for i in range(L) for p in _block_params("ehr.blocks.%d" % i, d, m)]
    t += [("ehr.ln_f.weight", (d,), "ln_w"), ("ehr.ln_f.bias", (d,), "ln_b")]
    if c["fusion"] == "cross":
        t += _cross_params("fuse.x_img", d, m) + _cross_params("fuse.x_txt", d, m)
        t += [("fuse.mod", (3, d), "emb")] + _block_params("fuse.block", d, m)
        t += [("fuse.ln_f.weight", (d,), "ln_w"), ("fuse.ln_f.bias", (d,), "ln_b")]
        t += [("head.weight", (K, d), "lin_w"), ("head.bias", (K,), "lin_b")]
    elif c["fusion"] == "early":
        t += [("fuse.mlp.fc.weight", (m, 3 * d + 3), "lin_w"), ("fuse.mlp.fc.bias", (m,), "lin_b"),
              ("fuse.mlp.proj.weight", (d, m), "lin_w"), ("fuse.mlp.proj.bias", (d,), "lin_b"),
              ("head.weight", (K, d), "lin_w"), ("head.bias", (K,), "lin_b")]
    else:
        t += [("fuse.w", (3,), "gate")]
        for mod in MOD_NAMES:
            t += [("head.%s.weight" % mod, (K, d), "lin_w"), ("head.%s.bias" % mod, (K,), "lin_b")]
    return t


def init_golden_weights(c, rng):
    """Weights for golden files: std 0.1 (attention far from uniform, so a wrong softmax
    backward shows in the q/k gradients), biases and LN shifts small but non-zero, LN gains
    1 + 0.1 noise. Rounded to float32 first: the oracle computes from exactly what it stores."""
    w = {}
    for name, shape, kind in param_table(c):
        if kind in ("lin_w", "emb"):
            a = rng.normal(0.0, 0.1, shape)
        elif kind == "ln_w":
            a = 1.0 + 0.1 * rng.normal(0.0, 1.0, shape)
        elif kind == "gate":
            a = rng.normal(0.0, 0.5, shape)
        else:  # lin_b, ln_b
            a = rng.normal(0.0, 0.05, shape)
        w[name] = a.astype(np.float32)
    return w


# ---------------------------------------------------------------------------------------------
# The model, functional: params is a dict name -> tensor
# ---------------------------------------------------------------------------------------------

def linear(p, name, x):
    return F.linear(x, p[name + ".weight"], p[name + ".bias"])


def layer_norm(p, name, x):
    return F.layer_norm(x, (x.shape[-1],), p[name + ".weight"], p[name + ".bias"], 1e-5)


def gelu(x):
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); torch's fused kernel of that formula
    (tests/models/check_torch_peer.py checks it against the formula written out)."""
    return F.gelu(x, approximate="tanh")


def attend(q, k, v, key_mask, heads):
    """q [B,Lq,d], k/v [B,Lk,d], key_mask [B,Lk] bool. Heads take the width in order. A query
    whose keys are all masked gets all-zero weights (output 0), never NaN."""
    B, Lq, d = q.shape
    Lk, hd = k.shape[1], d // heads
    qh = q.reshape(B, Lq, heads, hd).transpose(1, 2)
    kh = k.reshape(B, Lk, heads, hd).transpose(1, 2)
    vh = v.reshape(B, Lk, heads, hd).transpose(1, 2)
    s = qh @ kh.transpose(-1, -2) / math.sqrt(hd)  # [B,h,Lq,Lk]
    m = key_mask[:, None, None, :]
    # a finite stand-in for -inf: exp underflows to exactly 0 for a masked key when a row
    # has any valid key, and an all-masked row stays finite (uniform) until it is zeroed
    w = torch.softmax(s.masked_fill(~m, -1e30), -1)
    w = w * m.any(-1, keepdim=True).to(w.dtype)
    return (w @ vh).transpose(1, 2).reshape(B, Lq, d)


def block(p, pre, x, key_mask, heads):
    d = x.shape[-1]
    qkv = linear(p, pre + ".attn.qkv", layer_norm(p, pre + ".ln1", x))
    q, k, v = qkv[..., :d], qkv[..., d:2 * d], qkv[..., 2 * d:]
    x = x + linear(p, pre + ".attn.proj", attend(q, k, v, key_mask, heads))
    h = gelu(linear(p, pre + ".mlp.fc", layer_norm(p, pre + ".ln2", x)))
    return x + linear(p, pre + ".mlp.proj", h)


def cross_block(p, pre, x, ctx, ctx_mask, ctx_present, heads):
    d = x.shape[-1]
    q = linear(p, pre + ".attn.q", layer_norm(p, pre + ".ln_q", x))
    kv = linear(p, pre + ".attn.kv", layer_norm(p, pre + ".ln_kv", ctx))
    k, v = kv[..., :d], kv[..., d:]
    y = x + linear(p, pre + ".attn.proj", attend(q, k, v, ctx_mask, heads))
    h = gelu(linear(p, pre + ".mlp.fc", layer_norm(p, pre + ".ln2", y)))
    y = y + linear(p, pre + ".mlp.proj", h)
    # identity for a sample whose context modality is absent
    return torch.where(ctx_present[:, None, None], y, x)


def masked_mean(x, mask):
    """x [B,L,d], mask [B,L] bool -> [B,d]; 0 for a row with no valid token."""
    mf = mask.to(x.dtype)
    cnt = mf.sum(1, keepdim=True)
    return (x * mf[..., None]).sum(1) / torch.clamp(cnt, min=1.0)


def patchify(image, P):
    """[B,C,H,W] -> [B, (H/P)(W/P), C*P*P]: patches row-major, inside a patch channel-major
    then row-major (one channel in every shipped config, so 'row-major inside a patch')."""
    B, C, H, W = image.shape
    x = image.reshape(B, C, H // P, P, W // P, P).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(B, (H // P) * (W // P), C * P * P)


def encoders(p, c, inp):
    """Returns (H_img, H_txt, H_ehr, txt_mask, ehr_mask, present [B,3] bool)."""
    heads, L = c["heads"], c["layers"]
    image = inp["image"]
    B = image.shape[0]
    x = linear(p, "img.patch", patchify(image, c["img_patch"])) + p["img.pos"]
    all_keys = torch.ones(B, x.shape[1], dtype=torch.bool, device=x.device)
    for i in range(L):
        x = block(p, "img.blocks.%d" % i, x, all_keys, heads)
    h_img = layer_norm(p, "img.ln_f", x)

    ids = inp["text_ids"]
    tmask = ids != 0
    x = p["txt.tok"][ids] + p["txt.pos"]
    for i in range(L):
        x = block(p, "txt.blocks.%d" % i, x, tmask, heads)
    h_txt = layer_norm(p, "txt.ln_f", x)

    code = inp["ehr_code"]
    emask = code != 0
    x = p["ehr.code"][code] + p["ehr.val"][inp["ehr_val"]] + p["ehr.time"][inp["ehr_time"]] + p["ehr.pos"]
    for i in range(L):
        x = block(p, "ehr.blocks.%d" % i, x, emask, heads)
    h_ehr = layer_norm(p, "ehr.ln_f", x)

    present = torch.stack([inp["image_present"] > 0.5, tmask.any(1), emask.any(1)], 1)
    return h_img, h_txt, h_ehr, tmask, emask, present


def forward(p, c, inp):
    """Logits [B,K] for the configured fusion mode."""
    h_img, h_txt, h_ehr, tmask, emask, present = encoders(p, c, inp)
    heads, fusion = c["heads"], c["fusion"]
    if fusion == "cross":
        x_img = cross_block(p, "fuse.x_img", h_img, h_txt, tmask, present[:, 1], heads)
        x_txt = cross_block(p, "fuse.x_txt", h_txt, h_ehr, emask, present[:, 2], heads)
        f = torch.stack([x_img.mean(1), masked_mean(x_txt, tmask), masked_mean(h_ehr, emask)], 1)
        f = f + p["fuse.mod"]
        f = layer_norm(p, "fuse.ln_f", block(p, "fuse.block", f, present, heads))
        return linear(p, "head", masked_mean(f, present))
    pf = present.to(h_img.dtype)
    pooled = [h_img.mean(1) * pf[:, 0:1], masked_mean(h_txt, tmask), masked_mean(h_ehr, emask)]
    if fusion == "early":
        z = torch.cat(pooled + [pf], 1)
        h = linear(p, "fuse.mlp.proj", gelu(linear(p, "fuse.mlp.fc", z)))
        return linear(p, "head", h)
    logits = torch.stack([linear(p, "head." + mod, v) for mod, v in zip(MOD_NAMES, pooled)], 1)
    w = torch.softmax(p["fuse.w"], 0)[None, :] * pf  # [B,3], renormalised over present ones
    w = w / w.sum(1, keepdim=True)
    return (w[..., None] * logits).sum(1)


def loss_fn(logits, labels):
    return F.binary_cross_entropy_with_logits(logits, labels, reduction="mean")


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------

INPUT_NAMES = ("image", "image_present", "text_ids", "ehr_code", "ehr_val", "ehr_time", "labels")

# presence patterns (image, text, ehr) cycled over the batch; never all three absent
PATTERNS = [(1, 1, 1), (0, 1, 1), (1, 0, 1), (1, 1, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 1)]


def make_inputs(c, rng, B, all_present=False, text_len=None, ehr_len=None):
    """Inputs with mixed presence (PATTERNS cycled) or all present. Text/EHR: random lengths
    then zero padding; the last pattern also gets a few interior padding positions (the key
    mask is per position, id != 0, not a length). Absent image -> zeros, absent note -> all
    ids 0, absent record -> all codes (and values, times) 0."""
    C, S = c["img_channels"], c["img_size"]
    Lt, Le = c["txt_length"], c["ehr_length"]
    image = np.zeros((B, C, S, S), np.float32)
    present = np.zeros((B,), np.float32)
    text = np.zeros((B, Lt), np.int32)
    code = np.zeros((B, Le), np.int32)
    val = np.zeros((B, Le), np.int32)
    tim = np.zeros((B, Le), np.int32)
    for b in range(B):
        pat = (1, 1, 1) if all_present else PATTERNS[b % len(PATTERNS)]
        if pat[0]:
            image[b] = rng.normal(0.0, 1.0, (C, S, S))
            present[b] = 1.0
        if pat[1]:
            n = text_len(rng) if text_len else (Lt if b == 0 else int(rng.integers(1, Lt + 1)))
            text[b, :n] = rng.integers(1, c["txt_vocab"], n)
            if b % len(PATTERNS) == 7 and n > 3:
                text[b, rng.choice(np.arange(1, n), 2, replace=False)] = 0
        if pat[2]:
            n = ehr_len(rng) if ehr_len else (Le if b == 0 else int(rng.integers(1, Le + 1)))
            code[b, :n] = rng.integers(1, c["ehr_codes"], n)
            val[b, :n] = rng.integers(0, c["ehr_values"], n)
            tim[b, :n] = rng.integers(0, c["ehr_times"], n)
            if b % len(PATTERNS) == 7 and n > 3:
                hole = rng.choice(np.arange(1, n), 2, replace=False)
                code[b, hole] = val[b, hole] = tim[b, hole] = 0
    labels = rng.integers(0, 2, (B, c["tasks"])).astype(np.float32)
    return {"image": image, "image_present": present, "text_ids": text, "ehr_code": code,
            "ehr_val": val, "ehr_time": tim, "labels": labels}


def check_inputs(c, inp, where):
    """Shapes, dtypes, ranges, NaN and 'no modality' as the C side refuses them."""
    for n in INPUT_NAMES:
        if n not in inp:
            raise PeerError("%s: missing tensor '%s'" % (where, n))
    B = inp["image"].shape[0] if inp["image"].ndim == 4 else -1
    want = {"image": (B, c["img_channels"], c["img_size"], c["img_size"]), "image_present": (B,),
            "text_ids": (B, c["txt_length"]), "ehr_code": (B, c["ehr_length"]),
            "ehr_val": (B, c["ehr_length"]), "ehr_time": (B, c["ehr_length"]),
            "labels": (B, c["tasks"])}
    for n, shape in want.items():
        a = inp[n]
        if tuple(a.shape) != shape:
            raise PeerError("%s: tensor '%s' has shape %s, expected %s"
                            % (where, n, list(a.shape), list(shape)))
        isint = n.startswith("text") or n.startswith("ehr")
        if a.dtype != (np.int32 if isint else np.float32):
            raise PeerError("%s: tensor '%s' has dtype %s, expected %s"
                            % (where, n, a.dtype, "I32" if isint else "F32"))
        if not isint and not np.all(np.isfinite(a)):
            bad = np.argwhere(~np.isfinite(a))[0]
            raise PeerError("%s: tensor '%s' is not finite at %s" % (where, n, list(bad)))
    for n, hi in (("text_ids", c["txt_vocab"]), ("ehr_code", c["ehr_codes"]),
                  ("ehr_val", c["ehr_values"]), ("ehr_time", c["ehr_times"])):
        bad = np.argwhere((inp[n] < 0) | (inp[n] >= hi))
        if len(bad):
            raise PeerError("%s: tensor '%s' value %d at %s is outside [0, %d)"
                            % (where, n, inp[n][tuple(bad[0])], list(bad[0]), hi))
    none = (inp["image_present"] <= 0.5) & ~(inp["text_ids"] != 0).any(1) & ~(inp["ehr_code"] != 0).any(1)
    if none.any():
        raise PeerError("%s: sample %d has no modality present" % (where, int(np.argmax(none))))


def check_weights(c, w, where):
    for name, shape, _ in param_table(c):
        if name not in w:
            raise PeerError("%s: missing tensor '%s'" % (where, name))
        if tuple(w[name].shape) != shape:
            raise PeerError("%s: tensor '%s' has shape %s, expected %s"
                            % (where, name, list(w[name].shape), list(shape)))


def to_torch(c, weights, inputs, dtype, requires_grad):
    p = {}
    for name, _, _ in param_table(c):
        t = torch.tensor(weights[name], dtype=dtype)
        p[name] = t.requires_grad_(requires_grad)
    inp = {}
    for n in INPUT_NAMES:
        a = inputs[n]
        inp[n] = torch.tensor(a, dtype=torch.long) if a.dtype == np.int32 else torch.tensor(a, dtype=dtype)
    return p, inp


def run(c, weights, inputs, dtype, with_grad):
    """Returns an ordered dict of numpy float32 outputs: logits, loss[, grad.<name>...]."""
    load_torch()
    p, inp = to_torch(c, weights, inputs, dtype, with_grad)
    with torch.set_grad_enabled(with_grad):
        logits = forward(p, c, inp)
        loss = loss_fn(logits, inp["labels"])
    out = {"logits": logits.detach().numpy().astype(np.float32),
           "loss": loss.detach().reshape(1).numpy().astype(np.float32)}
    if with_grad:
        names = [n for n, _, _ in param_table(c)]
        grads = torch.autograd.grad(loss, [p[n] for n in names], allow_unused=True)
        for n, g in zip(names, grads):
            g = torch.zeros_like(p[n]) if g is None else g
            out["grad." + n] = g.detach().numpy().astype(np.float32)
    return out


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------

def cmd_golden(a):
    c = load_config(a.config, a.fusion)
    name = a.name or "%s_%s" % (c["name"].replace("fusion-", ""), c["fusion"])
    # separate streams: the inputs (and the encoder weights) of one seed are the same for
    # every fusion mode, whatever the mode's parameter count
    weights = init_golden_weights(c, np.random.default_rng([a.seed, 0]))
    inputs = make_inputs(c, np.random.default_rng([a.seed, 1]), a.batch)
    check_inputs(c, inputs, "golden inputs")
    expected = run(c, weights, inputs, torch.float64, True)
    os.makedirs(a.out, exist_ok=True)
    meta = {"generator": "bench/torch_peer.py golden", "config": c["name"], "fusion": c["fusion"],
            "seed": str(a.seed), "batch": str(a.batch), "precision": "float64, stored float32",
            "torch": torch.__version__}
    # the inputs of one seed and batch are the same for every mode: same bytes, one git blob
    st_save(os.path.join(a.out, name + "_inputs.safetensors"), inputs,
            {k: v for k, v in meta.items() if k != "fusion"})
    st_save(os.path.join(a.out, name + "_weights.safetensors"),
            {n: weights[n] for n, _, _ in param_table(c)}, meta)
    st_save(os.path.join(a.out, name + "_expected.safetensors"), expected, meta)
    print("%s: loss %.6f, %d parameters, written to %s"
          % (name, float(expected["loss"][0]), len(param_table(c)), a.out))


def cmd_forward(a, with_grad):
    c = load_config(a.config, a.fusion)
    weights, inputs = st_load(a.weights), st_load(a.inputs)
    check_weights(c, weights, a.weights)
    check_inputs(c, inputs, a.inputs)
    dtype = torch.float64 if a.dtype == "f64" else torch.float32
    out = run(c, weights, inputs, dtype, with_grad)
    st_save(a.out, out)
    print("loss %.7g" % float(out["loss"][0]))


def compare(expected, actual, tol):
    """Per tensor: max|a-e| / max|e| (the scale of the tensor, so near-zero elements of a
    well-scaled tensor do not blow up). Returns [(name, relerr, ok)]."""
    rows = []
    for n, e in expected.items():
        if n not in actual:
            rows.append((n, float("inf"), False))
            continue
        x = actual[n]
        if x.shape != e.shape:
            rows.append((n, float("inf"), False))
            continue
        e64, x64 = e.astype(np.float64), x.astype(np.float64)
        scale = np.max(np.abs(e64)) if e64.size else 0.0
        err = np.max(np.abs(x64 - e64)) if e64.size else 0.0
        rel = err / scale if scale > 0 else err
        rows.append((n, rel, bool(rel <= tol)))
    return rows


def cmd_compare(a):
    rows = compare(st_load(a.expected), st_load(a.actual), a.tol)
    if not rows:
        raise PeerError("%s: no tensors to compare" % a.expected)
    worst = max(rows, key=lambda r: r[1])
    actual = st_load(a.actual)
    for n, rel, ok in rows:
        if a.verbose or not ok:
            why = ""
            if n not in actual:
                why = " (missing)"
            elif rel == float("inf"):
                why = " (shape %s)" % list(actual[n].shape)
            print("%-44s %.3e %s%s" % (n, rel, "ok" if ok else "FAIL", why))
    bad = sum(1 for r in rows if not r[2])
    print("compared %d tensors, worst %s %.3e, %d above %.1e" % (len(rows), worst[0], worst[1], bad, a.tol))
    return 1 if bad else 0


def _openblas_threads():
    """OpenBLAS's own thread count (None when it is not the loaded BLAS)."""
    import ctypes
    try:
        return int(ctypes.CDLL("libopenblas.so.0").openblas_get_num_threads())
    except (OSError, AttributeError):
        return None


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cmd_bench(a):
    c = load_config(a.config, a.fusion)
    torch.set_num_threads(a.threads)
    blas = _openblas_threads()
    if blas is not None and blas != a.threads:
        raise PeerError("bench: OpenBLAS runs %d threads, not %d" % (blas, a.threads))
    rng = np.random.default_rng(a.seed)
    weights = init_golden_weights(c, rng)
    Lt, Le = c["txt_length"], c["ehr_length"]
    # realistic padding: text ~40/64, EHR ~90/128 (scaled to the config's lengths)
    tl = lambda r: int(np.clip(round(r.normal(Lt * 40 / 64, Lt / 16)), 1, Lt))
    el = lambda r: int(np.clip(round(r.normal(Le * 90 / 128, Le / 16)), 1, Le))
    inputs = make_inputs(c, rng, a.batch, all_present=True, text_len=tl, ehr_len=el)
    p, inp = to_torch(c, weights, inputs, torch.float32, True)
    table = param_table(c)
    decay = [p[n] for n, _, k in table if k == "lin_w"]
    other = [p[n] for n, _, k in table if k != "lin_w"]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": other, "weight_decay": 0.0}],
                            lr=3e-4, betas=(0.9, 0.999), eps=1e-8)

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(forward(p, c, inp), inp["labels"])
        loss.backward()
        opt.step()
        return loss

    def timed(fn):
        """Median seconds per call: robust to other work on a shared machine."""
        for _ in range(a.warmup):
            fn()
        ts, c0 = [], time.process_time()
        for _ in range(a.steps):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        cpu = (time.process_time() - c0) / a.steps  # all threads: CPU seconds per step
        return float(np.median(ts)), float(np.mean(ts)), cpu

    t_train, m_train, c_train = timed(train_step)
    loss = train_step()
    if not math.isfinite(float(loss)):
        raise PeerError("bench: non-finite loss")
    with torch.no_grad():
        t_infer, m_infer, c_infer = timed(lambda: forward(p, c, inp))
    print("# torch %s, config %s, fusion %s, batch %d, threads %d (OpenBLAS %s), steps %d"
          % (torch.__version__, c["name"], c["fusion"], a.batch, a.threads, _openblas_threads(), a.steps))
    print("# per step: train median %.1f ms (mean %.1f, CPU %.1f), infer median %.1f ms (mean %.1f, CPU %.1f)"
          % (1e3 * t_train, 1e3 * m_train, 1e3 * c_train, 1e3 * t_infer, 1e3 * m_infer, 1e3 * c_infer))
    print("torch_train_samples_per_s %.2f" % (a.batch / t_train))
    print("torch_infer_samples_per_s %.2f" % (a.batch / t_infer))
    # peak of the process: reached while training (activations + grads + AdamW moments)
    print("torch_peak_rss_mb %.1f" % _peak_rss_mb())


def build_parser():
    ap = argparse.ArgumentParser(prog="torch_peer.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("golden", help="write golden inputs/weights/expected files")
    g.add_argument("--config", required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--batch", type=int, default=8)
    g.add_argument("--fusion", choices=FUSIONS)
    g.add_argument("--name", help="file prefix (default <config name without fusion->_<fusion>)")
    for cmd in ("forward", "grad"):
        f = sub.add_parser(cmd, help="logits and loss" + (" and every gradient" if cmd == "grad" else ""))
        f.add_argument("--config", required=True)
        f.add_argument("--weights", required=True)
        f.add_argument("--inputs", required=True)
        f.add_argument("--out", required=True)
        f.add_argument("--fusion", choices=FUSIONS)
        f.add_argument("--dtype", choices=("f64", "f32"), default="f64")
    cp = sub.add_parser("compare", help="relative error of each tensor against expected")
    cp.add_argument("--expected", required=True)
    cp.add_argument("--actual", required=True)
    cp.add_argument("--tol", type=float, default=1e-4)
    cp.add_argument("--verbose", "-v", action="store_true")
    b = sub.add_parser("bench", help="training and inference samples/s in float32")
    b.add_argument("--config", required=True)
    b.add_argument("--threads", type=int, default=1)
    b.add_argument("--batch", type=int, default=32)
    b.add_argument("--steps", type=int, default=10)
    b.add_argument("--warmup", type=int, default=2)
    b.add_argument("--seed", type=int, default=7)
    b.add_argument("--fusion", choices=FUSIONS)
    return ap


def main(argv=None):
    a = build_parser().parse_args(argv)
    if a.cmd == "bench":
        # Debian's torch multiplies with OpenBLAS, which reads its thread count once, when
        # the library loads, and ignores torch.set_num_threads. numpy (imported above) has
        # already loaded it, so setting os.environ now is too late: re-execute with the
        # environment set. Passive waiting keeps the OpenMP and OpenBLAS pools from spinning
        # against each other on two cores.
        want = {"OPENBLAS_NUM_THREADS": str(a.threads), "OMP_NUM_THREADS": str(a.threads),
                "MKL_NUM_THREADS": str(a.threads), "OMP_WAIT_POLICY": "PASSIVE"}
        if any(os.environ.get(k) != v for k, v in want.items()):
            env = dict(os.environ, **want)
            sys.stdout.flush()
            os.execve(sys.executable, [sys.executable, os.path.abspath(__file__)] + list(
                sys.argv[1:] if argv is None else argv), env)
    load_torch()
    try:
        if a.cmd == "golden":
            cmd_golden(a)
        elif a.cmd in ("forward", "grad"):
            cmd_forward(a, a.cmd == "grad")
        elif a.cmd == "compare":
            return cmd_compare(a)
        else:
            cmd_bench(a)
    except PeerError as e:
        print("torch_peer: error: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
