#!/usr/bin/python3
"""Reference point for the MIMIC-IV-ED demo run: AUROC of triage acuity alone (ESI 1 = most
urgent, score = -acuity) on the test split of an import, with a percentile bootstrap 95% CI
(stays resampled, 2000 replicates, seed 1), per task. Stdlib + numpy + scikit-learn.

usage: mimic_acuity_baseline.py DEMO_ROOT SITE_DIR...    (docs/data.md, "Real data")"""
import csv
import gzip
import os
import sys

import numpy as np
from sklearn.metrics import roc_auc_score

root, sites = sys.argv[1], sys.argv[2:]
tri = os.path.join(root, "mimic-iv-ed-demo-2.2", "ed", "triage.csv.gz")
with gzip.open(tri, "rt", newline="") as f:
    acuity = {r["stay_id"]: r["acuity"] for r in csv.DictReader(f)}
rows = []
for d in sites:
    with open(os.path.join(d, "patients.csv"), newline="") as f:
        rows += [r for r in csv.DictReader(f) if r["split"] == "test"]
# missing acuity scored as the median (3): it carries no information
score = np.array([-float(acuity[r["patient_id"]] or 3) for r in rows])
rng = np.random.default_rng(1)
for task in ("admission", "icu", "critical"):
    y = np.array([int(r["label_" + task]) for r in rows])
    auc = roc_auc_score(y, score)
    boot = []
    for _ in range(2000):
        i = rng.integers(0, len(y), len(y))
        if 0 < y[i].sum() < len(i):
            boot.append(roc_auc_score(y[i], score[i]))
    lo, hi = np.percentile(boot, [2.5, 97.5])
    print("acuity_auroc_%s %.4f [%.3f, %.3f] n %d pos %d" % (task, auc, lo, hi, len(y), y.sum()))
