#!/usr/bin/env python3
"""Declared tasks of every kind (issue 23 acceptance): builds the label columns of a site set,
and checks fedfuse's metrics against scikit-learn and an independent C-index.

  tasks_oracle.py labels DIR...            add grade (multiclass, 3 classes), los (regression),
                                           surv_time/surv_event (survival, censored) and flag
                                           (binary, empty everywhere) to each patients.csv;
                                           some labels missing per row, los missing at the
                                           last site (per-site missing labels)
  tasks_oracle.py check RUN EVAL DIR...    RUN: simulate's --out (federated metrics.json),
                                           EVAL: fedfuse eval --predictions --out (exact)
"""
import csv
import json
import math
import sys

import numpy as np
from sklearn.metrics import (accuracy_score, mean_absolute_error, mean_squared_error,
                             r2_score, roc_auc_score)

HORIZON = 30.0
TASKS = ("grade", "los", "death", "flag")


def strict(path):
    def bad(c):
        raise ValueError(f"{path}: {c} in the file")
    return json.load(open(path), parse_constant=bad)


def labels(dirs):
    rng = np.random.default_rng(23)
    for i, d in enumerate(dirs):
        rows = list(csv.DictReader(open(d + "/patients.csv", newline="")))
        for r in rows:
            adm = int(r["label_admission"] or 0)
            icu = int(r["label_icu"] or 0)
            # multiclass: grade 0..2 from the outcomes the cohort's modalities carry signal for
            g = adm + icu if rng.random() > 0.15 else int(rng.integers(0, 3))
            r["grade"] = "" if rng.random() < 0.1 else str(g)
            # regression: hours in hospital, missing at the last site (no column there)
            if i < len(dirs) - 1:
                los = 10 + 30 * adm + 40 * icu + rng.normal(0, 8)
                r["los"] = "" if rng.random() < 0.1 else f"{los:.3f}"
            # survival with censoring: earlier events for sicker patients
            rate = 0.02 * (1 + 2 * adm + 3 * icu)
            t_event = rng.exponential(1 / rate)
            t_cens = rng.uniform(5, 90)
            t = min(t_event, t_cens)
            r["surv_time"] = f"{t:.3f}"
            r["surv_event"] = "1" if t_event <= t_cens else "0"
            if rng.random() < 0.05:
                r["surv_time"] = r["surv_event"] = ""
            r["flag"] = ""  # a binary task nobody labelled
        fields = list(rows[0].keys())
        with open(d + "/patients.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)


def auc(y, s, **kw):
    """roc_auc_score, None where scikit-learn refuses (one class only)."""
    try:
        return roc_auc_score(y, s, **kw)
    except ValueError:
        return None


def cindex_independent(risk, time, event):
    """Harrell's C by brute force over ordered pairs, lifelines' convention: (i, j) comparable
    when i had the event and T_i < T_j, or T_i == T_j and j is censored; ties in risk 1/2."""
    num = den = 0.0
    n = len(risk)
    for i in range(n):
        if not event[i]:
            continue
        for j in range(n):
            if i == j:
                continue
            if time[i] < time[j] or (time[i] == time[j] and not event[j]):
                den += 1
                num += 1.0 if risk[i] > risk[j] else 0.5 if risk[i] == risk[j] else 0.0
    return num, den


def load_rows(dirs, eval_dir):
    """Per site: test-split rows joined with the predictions by patient id."""
    preds = {}
    for r in csv.DictReader(open(eval_dir + "/predictions.csv", newline="")):
        preds[(r["site"], r["patient_id"])] = r
    sites = {}
    for d in dirs:
        name = d.rstrip("/").split("/")[-1]
        rows = []
        for r in csv.DictReader(open(d + "/patients.csv", newline="")):
            if r["split"] != "test":
                continue
            p = preds.get((name, r["patient_id"]))
            if p is None:
                continue  # no modality: excluded by the loader
            rows.append((r, p))
        assert rows, name
        sites[name] = rows
    return sites


NBINS = 10000  # FF_EVAL_HIST_BINS


def binned(s):
    """A score as the federated histograms hold it: its bin, min(floor(s * nbins), nbins - 1)
    (AUROC from histograms = AUROC with the scores of one bin tied)."""
    return min(math.floor(s * NBINS), NBINS - 1)


def metrics_of(rows, hist=False):
    """Every metric of every task from (labels, predictions) rows, with sklearn; hist: the
    AUROCs of the binned scores (what the sites' histograms allow, exactly)."""
    out = {}
    sb = binned if hist else (lambda x: x)
    g = [(int(r["grade"]), [float(p[f"grade.p{c}"]) for c in range(3)]) for r, p in rows
         if r["grade"] != ""]
    y = np.array([a for a, _ in g])
    P = np.array([b for _, b in g])
    out["grade"] = {"n": len(g), "accuracy": accuracy_score(y, P.argmax(1)),
                    "per_class": [auc(y == c, [sb(x) for x in P[:, c]]) for c in range(3)]}
    pc = out["grade"]["per_class"]
    out["grade"]["macro_auroc"] = (auc(y, P, multi_class="ovr", average="macro", labels=[0, 1, 2])
                                   if not hist else None if None in pc else sum(pc) / 3)
    lo = [(float(r["los"]), float(p["los"])) for r, p in rows if r.get("los", "") != ""]
    if lo:
        yt = np.array([a for a, _ in lo])
        yp = np.array([b for _, b in lo])
        out["los"] = {"n": len(lo), "mae": mean_absolute_error(yt, yp),
                      "rmse": math.sqrt(mean_squared_error(yt, yp)), "r2": r2_score(yt, yp)}
    else:
        out["los"] = {"n": 0}
    sv = [(float(r["surv_time"]), int(r["surv_event"]), float(p["death.risk"])) for r, p in rows
          if r["surv_time"] != ""]
    t = [a for a, _, _ in sv]
    e = [b for _, b, _ in sv]
    s = [c for _, _, c in sv]
    num, den = cindex_independent(s, t, e)
    case = [(1 if (ti <= HORIZON and ei) else 0, sb(0.5 + math.atan(si) / math.pi))
            for ti, ei, si in sv if ti > HORIZON or ei]
    out["death"] = {"n": len(sv), "events": sum(e), "num": num, "den": den,
                    "cindex": num / den if den else None,
                    "td_auroc": auc([a for a, _ in case], [b for _, b in case])}
    return out


def close(a, b, tol, what, got=None, key=None):
    if b is None:  # undefined for scikit-learn: undefined here too, with a reason
        assert a is None and got["undefined"][key], (what, got)
        return
    if a is None or b is None or not math.isclose(a, b, rel_tol=0, abs_tol=tol):
        raise AssertionError(f"{what}: fedfuse {a} vs oracle {b} (tolerance {tol})")


def check_task(got, want, exact, what):
    """got: a task object of metrics.json ("pooled" or a site); want: metrics_of's entry."""
    auc_tol = 1e-9
    k = got["kind"]
    assert got["n"] == want["n"], (what, got["n"], want["n"])
    if k == "multiclass":
        close(got["accuracy"], want["accuracy"], 1e-12, what + " accuracy")
        close(got["macro_auroc"], want["macro_auroc"], auc_tol, what + " macro AUROC", got,
              "macro_auroc")
        for c in range(3):
            pc = got["per_class"][c]
            close(pc["auroc"], want["per_class"][c], auc_tol, f"{what} class {c} AUROC", pc, "auroc")
    elif k == "regression":
        if want["n"] == 0:
            for m in ("mae", "rmse", "r2"):
                assert got[m] is None and got["undefined"][m], (what, got)
            return
        for m in ("mae", "rmse", "r2"):
            close(got[m], want[m], 1e-6 * max(1.0, abs(want[m])), f"{what} {m}")
    elif k == "survival":
        assert got["events"] == want["events"], (what, got["events"], want["events"])
        close(got["td_auroc"], want["td_auroc"], auc_tol, what + " time-dependent AUROC", got,
              "td_auroc")
        close(got["cindex"], want["cindex"], 1e-12, what + " C-index", got, "cindex")
    else:
        raise AssertionError(f"{what}: kind {k}")


def check(run, eval_dir, dirs):
    sites = load_rows(dirs, eval_dir)
    per_site = {name: metrics_of(rows) for name, rows in sites.items()}
    per_site_h = {name: metrics_of(rows, True) for name, rows in sites.items()}
    pooled_rows = [x for rows in sites.values() for x in rows]
    pooled = metrics_of(pooled_rows)
    pooled_h = metrics_of(pooled_rows, True)
    # the federated pooled C-index is site-stratified: pairs within each site, summed
    num = sum(m["death"]["num"] for m in per_site.values())
    den = sum(m["death"]["den"] for m in per_site.values())
    strat = dict(pooled_h["death"], cindex=num / den if den else None)
    fed = strict(run + "/metrics.json")
    exact = strict(eval_dir + "/metrics.json")
    strict(run + "/comparison.json")
    strict(run + "/fedeval.json")
    for t in ("grade", "los", "death"):
        check_task(dict(exact["tasks"][t]["pooled"], kind=exact["tasks"][t]["kind"]),
                   pooled[t], True, f"eval pooled {t}")
        check_task(dict(fed["tasks"][t]["pooled"], kind=fed["tasks"][t]["kind"]),
                   strat if t == "death" else pooled_h[t], False, f"federated pooled {t}")
        for name in sites:
            check_task(dict(exact["tasks"][t]["sites"][name], kind=exact["tasks"][t]["kind"]),
                       per_site[name][t], True, f"eval {name} {t}")
            check_task(dict(fed["tasks"][t]["sites"][name], kind=fed["tasks"][t]["kind"]),
                       per_site_h[name][t], False, f"federated {name} {t}")
    # binning costs little: the federated AUROCs are within 0.01 of the exact ones here
    for t, k in (("grade", "macro_auroc"), ("death", "td_auroc")):
        if pooled[t][k] is not None and pooled_h[t][k] is not None:
            assert abs(pooled[t][k] - pooled_h[t][k]) < 0.01, (t, pooled[t][k], pooled_h[t][k])
    # the unlabelled binary task: undefined with its reason, everywhere
    for m, where in ((fed, "federated"), (exact, "eval")):
        f = m["tasks"]["flag"]
        assert f["kind"] == "binary", f
        assert m["auroc"]["flag"] is None, (where, m["auroc"])
        assert f["pooled"]["auroc"] is None and f["pooled"]["undefined"]["auroc"], (where, f)
    assert fed["undefined"]["flag"], fed["undefined"]
    for t, metric in (("grade", "macro_auroc"), ("los", "r2"), ("death", "cindex")):
        assert fed["headline"][t]["metric"] == metric, fed["headline"]
    ev = []
    for line in open(run + "/audit.jsonl"):
        e = json.loads(line, parse_constant=lambda c: 1 / 0)
        if e["event"] == "evaluation":
            ev.append(e["data"])
    assert ev, "no evaluation entry in the audit log"
    for d in ev:
        assert d["auroc"]["flag"] is None and d["undefined"]["flag"], d
        assert set(d["headline"]) == {"grade", "los", "death"}, d
    print("pooled (sklearn):", json.dumps({t: {k: v for k, v in pooled[t].items()
                                                if k not in ("num", "den")} for t in pooled}))
    print("federated headline:", json.dumps(fed["headline"]))
    print("checked", len(sites), "sites x 3 tasks x (eval exact, federated) and the unlabelled flag")


if __name__ == "__main__":
    if sys.argv[1] == "labels":
        labels(sys.argv[2:])
    elif sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        sys.exit("usage: tasks_oracle.py labels DIR... | check RUN EVAL DIR...")
