"""Independent check of the synthetic cohort's signal split (run by test_signal.c).

Reads the per-modality features test_signal.c exported from the loader's batches, fits one
scikit-learn logistic regression per modality and one on all three, trained on the train+val
splits of all hospitals pooled, and compares test-split AUROC per task with the oracle's
(the true risk from each hospital's oracle.csv). Fails (exit 1) unless, for the mean over
tasks, every single modality is at least MARGIN below all three (and below it on every task)
and all three are below the oracle. Prints the table that docs/data.md reproduces.
"""
import csv
import sys

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

MARGIN = 0.03
TASKS = ["admission", "icu", "critical"]
VT, VC, NI = 2048, 1024, 64


def main():
    tmp, rows = sys.argv[1], int(sys.argv[2])
    X = np.fromfile(f"{tmp}/features.f32", dtype=np.float32)
    cols = X.size // rows
    assert cols == VT + 1 + 2 * VC + 1 + NI + 1, cols
    X = X.reshape(rows, cols)
    meta = list(csv.reader(open(f"{tmp}/rows.csv")))
    ids = [m[0] for m in meta]
    site = np.array([int(m[1]) for m in meta])
    split = np.array([int(m[2]) for m in meta])
    y = np.array([[float(v) for v in m[3:6]] for m in meta])
    risk = {}
    for k in sorted(set(site)):
        for r in csv.DictReader(open(f"{tmp}/cohort/site-{k}/oracle.csv")):
            risk[r["patient_id"]] = [float(r[f"risk_{t}"]) for t in TASKS]
    oracle = np.array([risk[i] for i in ids])

    t_end = VT + 1
    e_end = t_end + 2 * VC + 1
    text = X[:, :t_end].copy()
    text[:, :VT] = np.log1p(text[:, :VT])
    ehr = X[:, t_end:e_end].copy()
    ehr[:, :VC] = np.log1p(ehr[:, :VC])
    ehr[:, VC:2 * VC] /= 10.0
    img = X[:, e_end:]
    groups = {"image": img, "note": text, "ehr": ehr, "all three": np.hstack([img, text, ehr])}

    train, test = split != 2, split == 2
    res = {}
    for name, F in groups.items():
        res[name] = []
        for k in range(3):
            m = LogisticRegression(C=0.05, max_iter=300)
            m.fit(F[train], y[train, k])
            res[name].append(roc_auc_score(y[test, k], m.decision_function(F[test])))
    res["oracle"] = [roc_auc_score(y[test, k], oracle[test, k]) for k in range(3)]

    print(f"test patients {test.sum()}, train+val {train.sum()}")
    print("| features | " + " | ".join(TASKS) + " | mean |")
    print("|---|" + "---|" * 4)
    for name in ["image", "note", "ehr", "all three", "oracle"]:
        a = res[name]
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in a) + f" | {np.mean(a):.3f} |")
    mean = {n: np.mean(v) for n, v in res.items()}
    ok = True
    for n in ["image", "note", "ehr"]:
        if not mean[n] <= mean["all three"] - MARGIN:
            print(f"FAIL: {n} mean AUROC {mean[n]:.3f} not {MARGIN} below all three "
                  f"{mean['all three']:.3f}")
            ok = False
        for k in range(3):
            if not res[n][k] < res["all three"][k]:
                print(f"FAIL: {n} alone beats all three on {TASKS[k]}")
                ok = False
    if not mean["all three"] < mean["oracle"]:
        print("FAIL: all three reach the oracle")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
