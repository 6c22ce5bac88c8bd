#!/usr/bin/env python3
"""Independent checks of a `fedfuse stats` run (docs/statistics.md) with numpy.

stats_oracle.py MODE OUT SITE...   MODE = demo | tcga
Every released pooled statistic is recomputed on the pooled rows: counts, sums and means
exactly (1e-9 relative for var/sd), quantiles within their stated bound, Kaplan-Meier within
1e-9 of the product-limit estimator written here. Suppressed cells must be absent from the
results and carry no value in the audit log."""
import csv
import json
import math
import os
import sys

import numpy as np


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def rows_of(path):
    f = os.path.join(path, "patients.csv") if os.path.isdir(path) else path
    with open(f, newline="") as fh:
        return list(csv.DictReader(fh))


def num(v):
    try:
        x = float(v)
        return x if math.isfinite(x) else None
    except (TypeError, ValueError):
        return None


def released(out):
    doc = json.load(open(os.path.join(out, "stats.json")))
    return doc, [r for r in doc["results"] if r["site"] == "pooled"]


def get(res, var, stat, **kw):
    for r in res:
        if r["variable"] == var and r["statistic"] == stat and all(r.get(k) == v for k, v in kw.items()):
            return r
    return None


def close(a, b, rel, what):
    if abs(a - b) > rel * max(1.0, abs(b)):
        fail("%s: fedfuse %r, numpy %r" % (what, a, b))


def check_log(out, doc):
    entries = [json.loads(l) for l in open(os.path.join(out, "audit.jsonl"))]
    st = [e for e in entries if e.get("event") == "statistics"]
    if len(st) != 1:
        fail("the audit log has %d statistics entries" % len(st))
    d = st[0]["data"] if "data" in st[0] else st[0]
    if d.get("job_sha256") != doc["job"]:
        fail("the log's job hash is not stats.json's")
    for s in d.get("suppressed", []):
        if "value" in s:
            fail("a suppressed cell has a value in the log: %r" % s)
    keys = {(r["variable"], r["statistic"], r["site"], r.get("cell")) for r in doc["suppressed"]}
    for r in doc["results"]:
        b = r.get("bin")
        name = r.get("category") or (b and "[%g, %g)" % (float(b["lo"]), float(b["hi"])))
        if (r["variable"], r["statistic"], r["site"], name) in keys:
            fail("cell %r is both released and suppressed" % (r,))
    return len(doc["suppressed"])


def check_demo(res, rows, where):
    """The demo query's statistics in res (one site's or the pooled ones) against rows."""
    n = 0
    r = get(res, "patients", "count")
    if r:
        if r["value"] != len(rows):
            fail("%s patients: %r vs %d" % (where, r["value"], len(rows)))
        n += 1
    age = np.array([num(r["age"]) for r in rows if num(r["age"]) is not None])
    exact = {"count": len(age), "sum": age.sum(), "mean": age.mean()}
    for stat, want in exact.items():
        r = get(res, "age", stat)
        if r is None:
            continue
        if r["value"] != want and abs(r["value"] - want) > 1e-12 * max(1, abs(want)):
            fail("%s age %s: %r vs %r" % (where, stat, r["value"], want))
        n += 1
    for stat, want in {"var": age.var(ddof=1), "sd": age.std(ddof=1)}.items():
        r = get(res, "age", stat)
        if r:
            close(r["value"], want, 1e-9, where + " age " + stat)
            n += 1
    for stat, p in {"q25": 25, "q50": 50, "q75": 75}.items():
        r = get(res, "age", stat)
        if r:
            want = np.percentile(age, p)
            if abs(r["value"] - want) > r["bound"] + 1e-12:
                fail("%s age %s: %r vs %r, bound %r" % (where, stat, r["value"], want, r["bound"]))
            n += 1
    for r in res:
        if r["variable"] == "age" and r["statistic"] == "hist":
            lo, hi = float(r["bin"]["lo"]), float(r["bin"]["hi"])
            want = int(((age >= lo) & (age < hi)).sum())
            if r["value"] != want:
                fail("%s age hist [%r, %r): %r vs %d" % (where, lo, hi, r["value"], want))
            n += 1
    for lab in ("label_admission", "label_icu", "label_critical"):
        y = np.array([num(r[lab]) for r in rows if num(r[lab]) is not None])
        r = get(res, lab, "mean")
        if r:
            if abs(r["value"] - y.mean()) > 1e-12:
                fail("%s %s prevalence: %r vs %r" % (where, lab, r["value"], y.mean()))
            n += 1
    for var, vals in (("sex", ["F", "M"]), ("insurance", ["public", "private", "uninsured"])):
        for v in vals:
            r = get(res, var, "hist", category=v)
            if r:
                want = sum(1 for x in rows if x[var] == v)
                if r["value"] != want:
                    fail("%s %s=%s: %r vs %d" % (where, var, v, r["value"], want))
                n += 1
    for r in res:
        if r["statistic"] == "crosstab":
            want = sum(1 for x in rows if x["sex"] == r["row"] and x["insurance"] == r["col"])
            if r["value"] != want:
                fail("%s crosstab %r: %r vs %d" % (where, r, r["value"], want))
            n += 1
    return n


def demo(out, sites):
    def cohort(s):
        return [r for r in rows_of(s) if num(r["age"]) is not None and 18 <= num(r["age"]) <= 120]
    doc, res = released(out)
    n = check_demo(res, [r for s in sites for r in cohort(s)], "pooled")
    per_site = 0
    for s in sites:
        name = os.path.basename(s.rstrip("/"))
        mine = [r for r in doc["results"] if r["site"] == name]
        per_site += check_demo(mine, cohort(s), name) if mine else 0
    sup = check_log(out, doc)
    print("demo: %d pooled and %d per-site statistics match numpy, %d suppressed cells absent "
          "from results and log" % (n, per_site, sup))
    if os.environ.get("STATS_WANT_PER_SITE") and per_site == 0:
        fail("no per-site results")


def km_reference(t, e):
    """Product-limit estimator: at each distinct event time s, S *= 1 - d(s) / n(s), where
    n(s) counts the rows with time >= s (censored at s are at risk at s)."""
    out = []
    s = 1.0
    for u in np.unique(t[e == 1]):
        d = int(((t == u) & (e == 1)).sum())
        at_risk = int((t >= u).sum())
        s *= 1.0 - d / at_risk
        out.append((u, s, at_risk, d))
    return out


def site_cut(t, e, k):
    """A site's administrative censoring (docs/statistics.md): from the first day whose
    at-risk set is below k (but not empty), its remaining patients count as censored the day
    before. Integer days: the query's bins are one day wide."""
    t = np.floor(t)
    for day in range(1, int(t.max()) + 1):
        at_risk = int((t >= day).sum())
        if 0 < at_risk < k:
            tail = t >= day
            t, e = t.copy(), e.copy()
            t[tail] = day - 1
            e[tail] = 0
            return t, e
    return t, e


def tcga(out, sites):
    k = int(os.environ.get("STATS_MIN_CELL", "1"))
    t, e = [], []
    for s in sites:
        rows = rows_of(s)
        st, se = site_cut(np.array([float(r["time"]) for r in rows]),
                          np.array([int(float(r["event"])) for r in rows]), k)
        t.append(st)
        e.append(se)
    t, e = np.concatenate(t), np.concatenate(e)
    rows = [r for s in sites for r in rows_of(s)]
    doc, res = released(out)
    km = [r for r in res if r["statistic"] == "km"]
    ref = km_reference(t, e)
    if not km:
        fail("no Kaplan-Meier steps released")
    worst = 0.0
    for r, (u, s, n, d) in zip(km, ref):
        if abs(r["time"] - u) > 1e-12 or r["at_risk"] != n or r["events"] != d:
            fail("KM step at %r: fedfuse (t=%r, at risk %r, events %r), numpy (t=%r, %d, %d)" %
                 (u, r["time"], r["at_risk"], r["events"], u, n, d))
        worst = max(worst, abs(r["value"] - s))
        if not (r["lower"] <= r["value"] <= r["upper"]):
            fail("KM band does not hold the estimate at t=%r" % u)
    if worst > 1e-9:
        fail("KM differs from the reference by %g" % worst)
    if len(km) != len(ref):
        fail("%d KM steps released, the reference has %d" % (len(km), len(ref)))
    age = np.array([float(r["age_at_index"]) for r in rows])
    for stat, p in {"q25": 25, "q50": 50, "q75": 75}.items():
        r = get(res, "age_at_index", stat)
        if r is None or abs(r["value"] - np.percentile(age, p)) > r["bound"] + 1e-12:
            fail("age_at_index %s: %r vs %r" % (stat, r, np.percentile(age, p)))
    check_log(out, doc)
    print("tcga: %d Kaplan-Meier steps (of %d event times; max |S - reference| = %.3g), quartiles "
          "within their bounds" % (len(km), len(ref), worst))


if __name__ == "__main__":
    {"demo": demo, "tcga": tcga}[sys.argv[1]](sys.argv[2], sys.argv[3:])
