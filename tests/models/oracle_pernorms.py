#!/usr/bin/python3
"""Per-example gradient norms of the committed fusion-tiny golden sets (cross, early, late),
from the PyTorch peer (bench/torch_peer.py, written from the spec) in float64: each example
alone through autograd, its loss the mean BCE over its tasks (what DP-SGD clips). Writes
tests/models/golden/tiny_<mode>_pernorm.safetensors with `norm` [B] and `sq.<name>` [B]
(F64: each example's squared gradient norm per parameter tensor), read by test_ghost.c.

usage: /usr/bin/python3 tests/models/oracle_pernorms.py   (needs python3-torch, numpy, yaml)
"""
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
sys.path.insert(0, os.path.join(root, "bench"))
import torch_peer as tp  # noqa: E402
import numpy as np  # noqa: E402


def main():
    torch = tp.load_torch()
    gold = os.path.join(here, "golden")
    for mode in ("cross", "early", "late"):
        c = tp.load_config(os.path.join(root, "configs", "model-tiny.yaml"), mode)
        w = tp.st_load(os.path.join(gold, "tiny_%s_weights.safetensors" % mode))
        x = tp.st_load(os.path.join(gold, "tiny_%s_inputs.safetensors" % mode))
        names = [n for n, _, _ in tp.param_table(c)]
        B = x["labels"].shape[0]
        sq = {n: np.zeros(B) for n in names}
        for i in range(B):
            one = {k: v[i:i + 1] for k, v in x.items() if k in tp.INPUT_NAMES}
            p, inp = tp.to_torch(c, w, one, torch.float64, True)
            loss = tp.loss_fn(tp.forward(p, c, inp), inp["labels"])
            grads = torch.autograd.grad(loss, [p[n] for n in names], allow_unused=True)
            for n, g in zip(names, grads):
                sq[n][i] = 0.0 if g is None else float((g * g).sum())
        out = {"norm": np.sqrt(sum(sq.values()))}
        out.update({"sq." + n: sq[n] for n in names})
        path = os.path.join(gold, "tiny_%s_pernorm.safetensors" % mode)
        tp.st_save(path, out)
        print("%s: norms %s" % (path, " ".join("%.6g" % v for v in out["norm"])))


if __name__ == "__main__":
    main()
