#!/usr/bin/python3
"""Checks a `fedfuse benchmark flamby` output folder against FLamby's published per-seed
results (stdlib only): results.csv has FLamby's columns, tests and method names; every
method FLamby published is within TOL of FLamby's mean over seeds 42-46 or better; the
means comparison.md prints as FLamby's are the ones these files give.
Usage: check_flamby.py DATASET OUT_DIR FLAMBY_RESULTS_DIR"""
import csv, glob, statistics, sys

ds, out, ref_dir = sys.argv[1:4]
prefix = "heart" if ds == "heart-disease" else "tcga"
ncenters = 4 if prefix == "heart" else 6
# The bar: the mean over the same five seeds within 0.02 of FLamby's, or better.
TOL = 0.02
# Explained in docs/benchmarks.md: fedfuse's Cyclic is cyclic weight transfer, ending at
# whichever centre trains last (0.72 on heart disease); FLamby's Cyclic code passes no weights
# (one model copy per client) and reports client 0's copy, a local model of Cleveland.
# fedfuse's CyclicFLamby100 runs that rule and is held to FLamby's published Cyclic100 on
# heart disease; Cyclic100 itself to FLamby's FedAvg (0.748) minus 0.05. On TCGA-BRCA (5
# rounds, 6 centres) FLamby's rule leaves client 0's copy untrained in some seeds: not held.
EXCEPTIONS = {("heart-disease", "Cyclic100"): ("FedAvg100", 0.05),
              ("heart-disease", "CyclicFLamby100"): ("Cyclic100", TOL)}

ref = {}
for f in sorted(glob.glob(f"{ref_dir}/{prefix}_seed4[2-6].csv")):
    for r in csv.DictReader(open(f)):
        if r["Test"] == "Pooled Test":
            ref.setdefault(r["Method"], []).append(float(r["Metric"]))
assert len(ref["FedAvg100"]) == 5, ref
assert len({r["seed"] for r in csv.DictReader(open(f"{out}/results.csv"))}) == 5
ref = {m: statistics.mean(v) for m, v in ref.items()}

rows = list(csv.DictReader(open(f"{out}/results.csv")))
assert list(rows[0].keys()) == ["seed", "Method", "Test", "Metric"], rows[0].keys()
tests = {r["Test"] for r in rows}
assert tests == {f"client_test_{k}" for k in range(ncenters)} | {"Pooled Test"}, tests
mine = {}
for r in rows:
    if r["Test"] == "Pooled Test":
        mine.setdefault(r["Method"], []).append(float(r["Metric"]))
expected = {"Pooled Training", "FedAvg100", "FedProx100", "Scaffold100", "FedAdam100",
            "FedYogi100", "FedAdagrad100", "Cyclic100", "FedAvgFineTuning100",
            "FedAvgLocalBias100", "CyclicFLamby100"} | {f"Local {k}" for k in range(ncenters)}
assert set(mine) == expected, set(mine) ^ expected

bad = []
for m, v in sorted(mine.items()):
    if ((m not in ref and (ds, m) not in EXCEPTIONS)) or m.startswith("Local"):
        continue  # fedfuse-only methods; local models: reported, not part of the bar
    other, tol = EXCEPTIONS.get((ds, m), (m, TOL))
    r = ref[other]
    got = statistics.mean(v)
    print(f"{ds} {m:16s} fedfuse {got:.3f} FLamby {other} {r:.3f}")
    if got < r - tol:
        bad.append(f"{m}: {got:.3f} < FLamby {other} {r:.3f} - {tol}")

table = open(f"{out}/comparison.md").read()
for m, r in ref.items():
    if m in mine and f"| {m} | " in table:
        line = next(l for l in table.splitlines() if l.startswith(f"| {m} | "))
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[2] != f"{r:.3f}":
            bad.append(f"comparison.md: FLamby's {m} is {cells[2]}, its files give {r:.3f}")
if bad:
    sys.exit("FAIL\n" + "\n".join(bad))
print(f"{ds}: ok")
