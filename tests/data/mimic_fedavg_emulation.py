#!/usr/bin/python3
"""FedAvg on the MIMIC-IV-ED demo sites, emulated with the fedfuse binary until
`fedfuse simulate` lands (docs/data.md, "Real data: MIMIC-IV-ED demo").

usage: mimic_fedavg_emulation.py FEDFUSE MODEL.yaml OUT_DIR SITE_DIR...
       [--rounds R] [--local-steps S] [--seed N]

Each round r, every site k trains from the current global weights on its own train split:
    FEDFUSE train --config MODEL.yaml --data SITE_k --init global.safetensors
                  --steps S --seed N*1000 + 10*r + k --out OUT/round-r/site-k
(round 1 starts from `FEDFUSE model init --seed N`), and the new global model is the average of the site models weighted by their training-stay
counts (McMahan et al. 2017). Only weights move between "sites"; each site bins values with
its own edges (no federated value-statistics step) and restarts AdamW each round. Weights are
read and written as safetensors with numpy (8-byte header length, JSON header, raw data).
The final model is OUT/global.safetensors; evaluate it with `fedfuse eval`."""
import argparse
import csv
import json
import os
import struct
import subprocess
import sys

import numpy as np


def st_read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", None)
    tensors = {}
    for name, h in header.items():
        a, b = h["data_offsets"]
        assert h["dtype"] == "F32", name
        tensors[name] = (np.frombuffer(data[a:b], dtype="<f4").reshape(h["shape"]), h)
    return tensors, meta


def st_write(path, tensors, meta):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors, key=lambda k: tensors[k][1]["data_offsets"][0]):
        arr = np.ascontiguousarray(tensors[name][0], dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(arr.shape),
                        "data_offsets": [off, off + arr.nbytes]}
        blobs.append(arr.tobytes())
        off += arr.nbytes
    if meta:
        header["__metadata__"] = meta
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))


ap = argparse.ArgumentParser()
ap.add_argument("fedfuse")
ap.add_argument("model")
ap.add_argument("out")
ap.add_argument("sites", nargs="+")
ap.add_argument("--rounds", type=int, default=20)
ap.add_argument("--local-steps", type=int, default=20)
ap.add_argument("--seed", type=int, default=1)
a = ap.parse_args()
os.makedirs(a.out, exist_ok=True)
weights = []
for d in a.sites:
    with open(os.path.join(d, "patients.csv"), newline="") as f:
        weights.append(sum(1 for r in csv.DictReader(f) if r["split"] == "train"))
glob = os.path.join(a.out, "global.safetensors")


def run(args):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        sys.exit("failed: %s\n%s" % (" ".join(args), p.stdout))


# Every site starts round 1 from the same initial weights, as a coordinator would send them.
run([a.fedfuse, "model", "init", "--config", a.model, "--seed", str(a.seed), "--out", glob])

for r in range(a.rounds):
    models = []
    for k, d in enumerate(a.sites):
        od = os.path.join(a.out, "round-%d" % r, "site-%d" % (k + 1))
        cmd = [a.fedfuse, "train", "--config", a.model, "--data", d, "--steps",
               str(a.local_steps), "--seed", str(a.seed * 1000 + 10 * r + k), "--out", od,
               "--init", glob]
        run(cmd)
        models.append(st_read(os.path.join(od, "model.safetensors")))
    total = float(sum(weights))
    avg = {name: (sum(w / total * m[0][name][0].astype(np.float64)
                      for w, m in zip(weights, models)).astype(np.float32), h)
           for name, (_, h) in models[0][0].items()}
    st_write(glob, avg, models[0][1])
    print("round %d/%d: averaged %d sites (train stays %s)" % (r + 1, a.rounds, len(models),
                                                              weights), flush=True)
