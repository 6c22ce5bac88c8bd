#!/usr/bin/python3
"""Writes test cases (CSV) and scikit-learn/numpy reference values (cases.json) for
tests/eval/test_sklearn.c. Run with Debian's /usr/bin/python3 (python3-sklearn); any import
failure must fail the test, never skip it.

usage: sklearn_ref.py OUTDIR
"""
import json
import os
import sys

import numpy as np
import scipy.optimize
import sklearn
from sklearn.calibration import calibration_curve
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (average_precision_score, brier_score_loss,
                             precision_recall_curve, roc_auc_score, roc_curve)

CLIP = 1e-12


def logit(s):
    s = np.clip(s, CLIP, 1 - CLIP)
    return np.log(s) - np.log1p(-s)


def reliability(y, s, nbins):
    prob_true, prob_pred = calibration_curve(y, s, n_bins=nbins, strategy="uniform")
    # the bin counts, exactly as sklearn bins (for ECE and to compare counts)
    bins = np.linspace(0.0, 1.0, nbins + 1)
    ids = np.searchsorted(bins[1:-1], s)
    counts = np.bincount(ids, minlength=nbins)
    nz = counts[counts > 0]
    ece = float(np.sum(nz / len(s) * np.abs(prob_pred - prob_true)))
    return prob_true.tolist(), prob_pred.tolist(), counts.tolist(), ece


def op_points(y, s):
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    spec = 1 - fpr
    sens90 = float(np.max(tpr[spec >= 0.9 - 1e-12]))
    spec90 = float(np.max(spec[tpr >= 0.9 - 1e-12]))
    return sens90, spec90


def calib_fit(y, s):
    x = logit(s).reshape(-1, 1)
    kw = dict(solver="newton-cg", tol=1e-12, max_iter=10000)
    try:
        lr = LogisticRegression(penalty=None, **kw)
    except Exception:  # older sklearn spells it 'none'
        lr = LogisticRegression(penalty="none", **kw)
    lr.fit(x, y)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def temperature(y, s):
    x = logit(s)

    def nll(logT):
        z = x / np.exp(logT)
        return float(np.sum(np.logaddexp(0, -z) * y + np.logaddexp(0, z) * (1 - y)))

    r = scipy.optimize.minimize_scalar(nll, bounds=(-7, 7), method="bounded",
                                       options={"xatol": 1e-12})
    return float(np.exp(r.x))


def threshold_stats(y, s, t):
    pred = s >= t
    tp, fp = int(np.sum(pred & (y == 1))), int(np.sum(pred & (y == 0)))
    P, N = int(np.sum(y)), int(np.sum(1 - y))
    return dict(alert_rate=(tp + fp) / len(y), ppv=(tp / (tp + fp)) if tp + fp else None,
                sensitivity=tp / P if P else None, specificity=(N - fp) / N if N else None)


def net_benefit(y, s, t):
    n = len(y)
    pred = s >= t
    tp, fp = np.sum(pred & (y == 1)), np.sum(pred & (y == 0))
    return float(tp / n - fp / n * t / (1 - t))


def fairness(y, s, g, t):
    out = {}
    rates = {"alert": [], "tpr": [], "fpr": []}
    for lv in sorted(set(g)):
        m = g == lv
        yy, ss = y[m], s[m]
        pred = ss >= t
        d = {"n": int(m.sum()), "brier": float(brier_score_loss(yy, ss))}
        if 0 < yy.sum() < len(yy):
            d["auroc"] = float(roc_auc_score(yy, ss))
        d["alert_rate"] = float(pred.mean())
        rates["alert"].append(d["alert_rate"])
        if yy.sum() > 0:
            rates["tpr"].append(float(pred[yy == 1].mean()))
        if (1 - yy).sum() > 0:
            rates["fpr"].append(float(pred[yy == 0].mean()))
        out[str(lv)] = d
    gap = lambda v: max(v) - min(v)
    return {"levels": out, "dp": gap(rates["alert"]),
            "eo": max(gap(rates["tpr"]), gap(rates["fpr"]))}


def case(name, y, s, groups=None, bins=(10, 7), outdir="."):
    y = np.asarray(y, dtype=np.int64)
    s = np.asarray(s, dtype=np.float64)
    path = os.path.join(outdir, name + ".csv")
    with open(path, "w") as f:
        cols = ["label", "score"] + (["grp"] if groups is not None else [])
        f.write(",".join(cols) + "\n")
        for i in range(len(y)):
            row = [str(int(y[i])), repr(float(s[i]))]
            if groups is not None:
                row.append(str(groups[i]))
            f.write(",".join(row) + "\n")
    both = 0 < y.sum() < len(y)
    ref = {"name": name, "csv": path, "n": len(y), "n_pos": int(y.sum()),
           "brier": float(brier_score_loss(y, s)),
           "reliability": {}, "threshold": threshold_stats(y, s, 0.5),
           "net_benefit": {str(t): net_benefit(y, s, t) for t in (0.05, 0.1, 0.2, 0.5)}}
    for b in bins:
        pt, pp, cnt, ece = reliability(y, s, b)
        ref["reliability"][str(b)] = {"prob_true": pt, "prob_pred": pp, "count": cnt,
                                      "ece": ece}
    if y.sum() > 0:
        ref["auprc"] = float(average_precision_score(y, s))
        prec, rec, _ = precision_recall_curve(y, s)
        ref["pr_precision"] = prec.tolist()
        ref["pr_recall"] = rec.tolist()
    if both:
        ref["auroc"] = float(roc_auc_score(y, s))
        fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
        ref["roc_fpr"] = fpr.tolist()
        ref["roc_tpr"] = tpr.tolist()
        ref["sens_at_90_spec"], ref["spec_at_90_sens"] = op_points(y, s)
        xs = logit(s)
        separated = xs[y == 1].min() >= xs[y == 0].max() or xs[y == 1].max() <= xs[y == 0].min()
        if not separated and len(set(xs)) > 1:
            ref["cal_slope"], ref["cal_intercept"] = calib_fit(y, s)
            if np.sum((0.5 - y) * xs) < 0:
                ref["temperature"] = temperature(y, s)
    if groups is not None:
        ref["fairness"] = fairness(y, s, np.asarray(groups), 0.5)
    return ref


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    rng = np.random.default_rng(20261128)
    cases = []
    # random: informative scores, both classes, three subgroups
    n = 1000
    y = rng.random(n) < 0.3
    s = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.2 * y - 0.8)))
    g = rng.choice(["A", "B", "C"], size=n, p=[0.5, 0.3, 0.2])
    cases.append(case("random", y, s, groups=g, outdir=outdir))
    # many ties: scores on a 0.05 grid, including exact reliability-bin edges
    n = 2000
    y = rng.random(n) < 0.4
    s = np.clip(np.round((rng.random(n) * 0.6 + 0.4 * y) / 0.05) * 0.05, 0, 1)
    cases.append(case("ties", y, s, outdir=outdir))
    # exact edges k/10 and k/7 and the ends 0 and 1
    s = np.concatenate([np.arange(11) / 10, np.arange(8) / 7, [0.0, 1.0, 0.5]])
    y = (rng.random(len(s)) < s).astype(int)
    y[0], y[-1] = 0, 1
    cases.append(case("edges", y, s, outdir=outdir))
    # imbalanced: 1% positives
    n = 20000
    y = rng.random(n) < 0.01
    s = 1 / (1 + np.exp(-(rng.normal(size=n) * 1.5 + 2.0 * y - 4.0)))
    sex = rng.choice(["F", "M"], size=n)
    cases.append(case("imbalanced", y, s, groups=sex, outdir=outdir))
    # tiny inputs
    cases.append(case("tiny4", [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], outdir=outdir))
    cases.append(case("tiny2", [1, 0], [0.3, 0.7], outdir=outdir))
    cases.append(case("tiny3_ties", [0, 1, 1], [0.5, 0.5, 0.9], outdir=outdir))
    cases.append(case("all_tied", [0, 1, 0, 1, 1, 0, 0, 0, 1, 0], [0.25] * 10, outdir=outdir))
    cases.append(case("separated", [0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.7, 0.9], outdir=outdir))
    # one class only: undefined AUROC, defined Brier/ECE
    cases.append(case("negatives_only", [0, 0, 0], [0.1, 0.2, 0.3], outdir=outdir))
    with open(os.path.join(outdir, "cases.json"), "w") as f:
        json.dump({"sklearn": sklearn.__version__, "cases": cases}, f)


if __name__ == "__main__":
    main()
