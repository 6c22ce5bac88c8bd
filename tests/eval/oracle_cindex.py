#!/usr/bin/python3
"""C-index references for test_cindex.c computed the way lifelines' concordance_index does
(FLamby's TCGA-BRCA metric: `concordance_index(T, -score, E)`), by its sweep rather than by
pairs: subjects in order of time; at each time the deaths are compared first with every
earlier death (their predicted times kept sorted), then inserted, then the censored of that
time are compared (so a censored row tied with a death counts as having lived longer);
concordant when the earlier death's predicted time is smaller, ties in prediction count 1/2.
Cases: random data with tied times, tied scores and heavy censoring, and FLamby's TCGA-BRCA
test rows (brca.csv, train_test_split.csv from ../shared/data/flamby) scored by age (many
ties). Writes JSON: [{"name", "time", "event", "risk", "cindex"}].
Usage: oracle_cindex.py FLAMBY_TCGA_DIR"""
import bisect, csv, json, sys

import numpy as np


def lifelines_sweep(time, predicted, event):
    died = sorted((t, p) for t, p, e in zip(time, predicted, event) if e)
    cens = sorted((t, p) for t, p, e in zip(time, predicted, event) if not e)
    seen, di, ci = [], 0, 0  # seen: predicted times of the deaths so far, sorted
    pairs = correct = tied = 0

    def handle(rows, i):
        nonlocal pairs, correct, tied
        j = i
        while j < len(rows) and rows[j][0] == rows[i][0]:
            j += 1
        pairs += len(seen) * (j - i)
        for _, p in rows[i:j]:
            lo, hi = bisect.bisect_left(seen, p), bisect.bisect_right(seen, p)
            correct += lo
            tied += hi - lo
        return j

    while di < len(died) or ci < len(cens):
        if ci < len(cens) and (di == len(died) or died[di][0] > cens[ci][0]):
            ci = handle(cens, ci)
        else:
            j = handle(died, di)
            for _, p in died[di:j]:
                bisect.insort(seen, p)
            di = j
    return (correct + 0.5 * tied) / pairs


cases = []
rng = np.random.default_rng(2024)
for k, (n, tmax, pcens, decimals) in enumerate([(40, 10, 0.3, 1), (200, 30, 0.7, 1),
                                                (300, 1000, 0.86, 3), (25, 3, 0.5, 0)]):
    t = rng.integers(1, tmax + 1, n).astype(float)
    e = (rng.random(n) > pcens).astype(int)
    r = np.round(rng.normal(size=n) - 0.02 * t, decimals)
    cases.append({"name": f"random{k}", "time": t.tolist(), "event": e.tolist(),
                  "risk": r.tolist()})

tcga = sys.argv[1]
test = {row["pid"] for row in csv.DictReader(open(f"{tcga}/train_test_split.csv"))
        if row["fold2"].startswith("test")}
t, e, r = [], [], []
for row in csv.DictReader(open(f"{tcga}/brca.csv")):
    if row["pid"] in test:
        t.append(float(row["T"]))
        e.append(int(float(row["E"])))
        r.append(float(row["age_at_index"]))
cases.append({"name": "tcga_test_by_age", "time": t, "event": e, "risk": r})

for c in cases:  # FLamby's call: predicted survival = -score
    c["cindex"] = lifelines_sweep(c["time"], [-x for x in c["risk"]], c["event"])
json.dump(cases, sys.stdout)
