#!/usr/bin/env python3
"""The tabular modality alone learns (tests/fed/byod_test.sh tabular).

  make DIR...             a site folder per DIR: patients.csv (patient_id, split, y) and
                          tabular.csv (x1..x3 numeric with a per-site offset and scale, x2
                          missing for 15%, grade in a/b/c); y from a logistic model of them
  check EVAL MARGIN DIR... fedfuse eval --predictions (EVAL/predictions.csv) against
                          scikit-learn's LogisticRegression trained on the same train rows
                          (features standardised per site with the train split's mean and
                          population sd, missing as 0 plus an indicator, grade one-hot): the
                          pooled test AUROC of fedfuse must be within MARGIN of it
"""
import csv
import sys

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

GRADES = ["a", "b", "c"]


def make(dirs):
    rng = np.random.default_rng(23)
    for s, d in enumerate(dirs):
        n = 400
        z = rng.normal(size=(n, 3))
        g = rng.integers(0, 3, size=n)
        logit = 1.6 * z[:, 0] - 1.2 * z[:, 1] + 0.6 * z[:, 2] + np.array([-0.8, 0.0, 0.9])[g]
        y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
        # each site measures in its own units: the site normalisation has to undo it
        x = z * (1.0 + 0.5 * s) + 3.0 * s
        miss = rng.random(n) < 0.15
        split = np.where(np.arange(n) % 10 < 6, "train", np.where(np.arange(n) % 10 < 7, "val", "test"))
        with open(d + "/patients.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["patient_id", "split", "y"])
            for i in range(n):
                w.writerow([f"s{s}p{i}", split[i], y[i]])
        with open(d + "/tabular.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["patient_id", "x1", "x2", "x3", "grade"])
            for i in range(n):
                w.writerow([f"s{s}p{i}", f"{x[i, 0]:.5f}", "" if miss[i] else f"{x[i, 1]:.5f}",
                            f"{x[i, 2]:.5f}", GRADES[g[i]]])


def site_rows(d):
    pat = {r["patient_id"]: r for r in csv.DictReader(open(d + "/patients.csv", newline=""))}
    rows = list(csv.DictReader(open(d + "/tabular.csv", newline="")))
    train = [r for r in rows if pat[r["patient_id"]]["split"] == "train"]
    stats = {}
    for k in ("x1", "x2", "x3"):
        v = np.array([float(r[k]) for r in train if r[k] != ""])
        stats[k] = (v.mean(), v.std())  # population sd, as the site loader
    feats, ys, ids, splits = [], [], [], []
    for r in rows:
        f = []
        for k in ("x1", "x2", "x3"):
            m, sd = stats[k]
            f += [0.0, 1.0] if r[k] == "" else [(float(r[k]) - m) / sd, 0.0]
        f += [1.0 if r["grade"] == c else 0.0 for c in GRADES] + [0.0]
        feats.append(f)
        p = pat[r["patient_id"]]
        ys.append(int(p["y"]))
        ids.append(r["patient_id"])
        splits.append(p["split"])
    return np.array(feats), np.array(ys), ids, splits


def check(eval_dir, margin, dirs):
    preds = {}
    for r in csv.DictReader(open(eval_dir + "/predictions.csv", newline="")):
        preds[r["patient_id"]] = r
    X_tr, y_tr, X_te, y_te, got = [], [], [], [], []
    for d in dirs:
        X, y, ids, splits = site_rows(d)
        for i, sp in enumerate(splits):
            if sp == "train":
                X_tr.append(X[i]); y_tr.append(y[i])
            elif sp == "test":
                X_te.append(X[i]); y_te.append(y[i])
                got.append(float(preds[ids[i]]["y"]))
    lr = LogisticRegression(max_iter=2000).fit(np.array(X_tr), np.array(y_tr))
    want = roc_auc_score(y_te, lr.predict_proba(np.array(X_te))[:, 1])
    have = roc_auc_score(y_te, got)
    print(f"test AUROC: fedfuse {have:.4f}, scikit-learn logistic regression {want:.4f} "
          f"({len(y_te)} test patients, margin {margin})")
    assert have >= want - margin, (have, want)


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2:])
    else:
        check(sys.argv[2], float(sys.argv[3]), sys.argv[4:])
