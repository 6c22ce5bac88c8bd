#!/usr/bin/python3
"""The coordinator's intervals and calibration fit against the exact computation on pooled
predictions. Three synthetic sites write score histograms (`fedfuse metrics --hist-out`), the
histograms are merged with a histogram bootstrap (`fedfuse metrics-pool --bootstrap`), and
the result is compared with the exact percentile bootstrap of the pooled predictions done here
with numpy + scikit-learn (AUROC, AUPRC, calibration slope and intercept, subgroup AUROC and
the demographic-parity / equalized-odds differences), and with scikit-learn's unpenalised
logistic fit for the calibration slope and intercept. Exits non-zero on any mismatch or a
missing dependency (never skips).

usage: check_hist_ci.py FEDFUSE OUTDIR
"""
import json
import os
import subprocess
import sys

import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score

B = 1000  # replicates on both sides


def site(rng, n, prev, sep, name, outdir):
    y = (rng.random(n) < prev).astype(int)
    sex = np.where(rng.random(n) < 0.5, "F", "M")
    z = rng.normal(size=n) + sep * y - 1.5 + 0.3 * (sex == "F")
    s = 1 / (1 + np.exp(-z))
    path = os.path.join(outdir, name + ".csv")
    with open(path, "w") as f:
        f.write("label,score,sex\n")
        f.writelines(f"{a},{b!r},{c}\n" for a, b, c in zip(y, s, sex))
    return y, s, sex, path


def logit(s):
    s = np.clip(s, 1e-12, 1 - 1e-12)
    return np.log(s / (1 - s))


def cal_fit(y, s):
    m = LogisticRegression(penalty=None, solver="newton-cg", tol=1e-10, max_iter=1000)
    m.fit(logit(s).reshape(-1, 1), y)
    return m.coef_[0][0], m.intercept_[0]


def rates(y, s, sex, thr):
    ar, tpr, fpr = [], [], []
    for lv in ("F", "M"):
        k = sex == lv
        p = s[k] >= thr
        ar.append(p.mean())
        tpr.append(p[y[k] == 1].mean())
        fpr.append(p[y[k] == 0].mean())
    return max(ar) - min(ar), max(max(tpr) - min(tpr), max(fpr) - min(fpr))


def exact_bootstrap(y, s, sex):
    rng = np.random.default_rng(11)
    n = len(y)
    out = {k: [] for k in ("auroc", "auprc", "slope", "intercept", "auroc_F", "dp", "eo")}
    for _ in range(B):
        i = rng.integers(0, n, n)
        yy, ss, xx = y[i], s[i], sex[i]
        out["auroc"].append(roc_auc_score(yy, ss))
        out["auprc"].append(average_precision_score(yy, ss))
        if _ < 300:  # the logistic fit is the slow part; 300 replicates bound its endpoints
            b, a = cal_fit(yy, ss)
            out["slope"].append(b)
            out["intercept"].append(a)
        f = xx == "F"
        out["auroc_F"].append(roc_auc_score(yy[f], ss[f]))
        dp, eo = rates(yy, ss, xx, 0.5)
        out["dp"].append(dp)
        out["eo"].append(eo)
    return {k: np.percentile(v, [2.5, 97.5]) for k, v in out.items()}


def check(name, ours, ref, tol_frac):
    """Endpoints within tol_frac of the exact interval's width (Monte Carlo error of two
    independent bootstraps of B replicates is a few percent of the width)."""
    width = ref[1] - ref[0]
    for a, b, end in ((ours[0], ref[0], "lower"), (ours[1], ref[1], "upper")):
        if abs(a - b) > tol_frac * width:
            raise SystemExit(f"FAIL {name} {end}: histogram bootstrap {a:.5f} vs exact "
                             f"{b:.5f} (interval width {width:.5f}, tol {tol_frac})")
    print(f"ok {name}: [{ours[0]:.4f}, {ours[1]:.4f}] vs exact [{ref[0]:.4f}, {ref[1]:.4f}]")


def main():
    warnings.simplefilter("ignore")  # newton-cg line-search chatter at tol 1e-10
    fedfuse, outdir = sys.argv[1], sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    rng = np.random.default_rng(5)
    parts = [site(rng, 1500, 0.10, 1.8, "a", outdir), site(rng, 2500, 0.25, 1.2, "b", outdir),
             site(rng, 2000, 0.18, 1.5, "c", outdir)]
    hists = []
    for (_, _, _, path), name in zip(parts, "abc"):
        h = os.path.join(outdir, name + ".hist.json")
        subprocess.run([fedfuse, "metrics", "--csv", path, "--group", "sex", "--task", "t",
                        "--hist-out", h, "--out", os.path.join(outdir, name + ".json")],
                       check=True)
        hists += ["--hist", h]
    out = os.path.join(outdir, "pooled.json")
    subprocess.run([fedfuse, "metrics-pool", *hists, "--bootstrap", str(B), "--seed", "4",
                    "--out", out], check=True)
    j = json.load(open(out))
    y = np.concatenate([p[0] for p in parts])
    s = np.concatenate([p[1] for p in parts])
    sex = np.concatenate([p[2] for p in parts])

    b, a = cal_fit(y, s)
    for key, ref in (("calibration_slope", b), ("calibration_intercept", a)):
        if j[key] is None or abs(j[key] - ref) > 2e-3:
            raise SystemExit(f"FAIL {key}: histogram {j[key]} vs sklearn {ref}")
        print(f"ok {key}: histogram {j[key]:.6f} vs sklearn {ref:.6f}")

    ref = exact_bootstrap(y, s, sex)
    ci = j["ci95"]
    check("auroc", ci["auroc"], ref["auroc"], 0.15)
    check("auprc", ci["auprc"], ref["auprc"], 0.15)
    check("calibration_slope", ci["calibration_slope"], ref["slope"], 0.25)
    check("calibration_intercept", ci["calibration_intercept"], ref["intercept"], 0.25)
    g = j["groups"]["sex"]
    check("auroc (sex=F)", g["levels"]["F"]["ci95"]["auroc"], ref["auroc_F"], 0.15)
    check("demographic parity difference", g["ci95"]["demographic_parity_difference"],
          ref["dp"], 0.2)
    check("equalized odds difference", g["ci95"]["equalized_odds_difference"], ref["eo"], 0.2)


if __name__ == "__main__":
    main()
