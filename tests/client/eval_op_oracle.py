#!/usr/bin/env python3
"""`fedfuse eval`'s operating point against numpy (tests/client/eval_op_test.sh).

  eval_op_oracle.py RULE TARGET VALPRED TESTDIR SITE_DIR...

VALPRED: predictions.csv of the validation split (`fedfuse eval --split val --predictions`);
TESTDIR: the `fedfuse eval --predictions --operating-point RULE:TARGET` output on the test split.
Per binary task of the demo cohort: the threshold the rule picks on the sites' pooled
validation scores, read through 10,000 bins (a bin edge, as the federated report), computed
here from the definitions in docs/evaluation.md without fedfuse's code; then alert rate,
sensitivity, specificity and PPV of the test predictions at it (flagged when score >=
threshold). metrics.json must hold the same threshold and values, and report.html must show
them (3 decimals) in the task's "At the operating threshold" row for the pooled column, with
the rule in the task's first line.
"""
import csv
import html
import json
import re
import sys

import numpy as np

M = 10000
TASKS = ("admission", "icu", "critical")


def labels(site_dirs):
    out = {}
    for d in site_dirs:
        for r in csv.DictReader(open(d + "/patients.csv", newline="")):
            out[r["patient_id"]] = r
    return out


def scores(pred_csv, lab, task):
    s, y = [], []
    for r in csv.DictReader(open(pred_csv, newline="")):
        v = lab[r["patient_id"]]["label_" + task]
        if v == "":
            continue
        # the model's float32 output, as fedfuse bins it (a double of the float)
        s.append(float(np.float32(r[task])))
        y.append(int(v))
    return np.array(s, dtype=np.float64), np.array(y)


def threshold(rule, target, s, y):
    b = np.minimum(np.floor(s * M), M - 1).astype(np.int64)
    P, N, n = (y == 1).sum(), (y == 0).sum(), len(y)
    if rule == "threshold":
        return target
    nonempty = np.unique(b)
    if rule in ("specificity", "sensitivity") and (P == 0 or N == 0):
        return 0.5
    if rule == "specificity":  # lowest edge of a bin with a positive keeping spec >= target
        ok = [e for e in nonempty if (y[b == e] == 1).any()
              and (b[y == 0] < e).sum() / N >= target - 1e-12]
        return min(min(ok) / M, 1.0) if ok else 1.0
    if rule == "sensitivity":  # highest edge keeping sensitivity >= target
        ok = [e for e in nonempty if (b[y == 1] >= e).sum() / P >= target - 1e-12]
        return max(ok) / M
    if rule == "alert_rate":  # lowest edge keeping the share flagged <= target
        ok = [e for e in nonempty if (b >= e).sum() / n <= target + 1e-12]
        return min(min(ok) / M, 1.0) if ok else min(nonempty.max() / M + 1 / M, 1.0)
    raise SystemExit("unknown rule " + rule)


def at(s, y, t):
    f = s >= t
    P, N = (y == 1).sum(), (y == 0).sum()
    return {"alert_rate": f.mean(),
            "sensitivity": (f & (y == 1)).sum() / P if P else None,
            "specificity": (~f & (y == 0)).sum() / N if N else None,
            "ppv": (f & (y == 1)).sum() / f.sum() if f.sum() else None}


def pooled_row(page, task):
    sec = page.split("Task: " + task)[1].split("Task: ")[0]
    first = re.search(r"Operating point:[^<]*", sec)
    op = sec.split('class="op"')[1].split("</table>")[0]
    for row in re.findall(r"<tr>(.*?)</tr>", op, re.S):
        cells = [html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
                 for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        if cells and cells[0] == "pooled":
            return html.unescape(first.group(0)) if first else "", cells
    raise SystemExit(f"{task}: no pooled row in the operating-threshold table")


def main():
    rule, target, valpred, tdir, sites = sys.argv[1], float(sys.argv[2]), sys.argv[3], \
        sys.argv[4], sys.argv[5:]
    lab = labels(sites)
    m = json.load(open(tdir + "/metrics.json"))
    page = open(tdir + "/report.html").read()
    bad = 0
    for task in TASKS:
        vs, vy = scores(valpred, lab, task)
        ts, ty = scores(tdir + "/predictions.csv", lab, task)
        thr = threshold(rule, target, vs, vy)
        want = at(ts, ty, thr)
        t = m["tasks"][task]
        op, pooled = t["operating_point"], t["pooled"]
        got_thr = op["threshold"]
        line = f"{task}: threshold numpy {thr:.6g} fedfuse {got_thr:.6g}"
        if op["rule"] != rule or abs(op["target"] - target) > 1e-12 or abs(got_thr - thr) > 1e-12 \
                or abs(pooled["threshold"] - thr) > 1e-12:
            print("FAIL " + line, op)
            bad = 1
            continue
        note, cells = pooled_row(page, task)
        for k, col in (("alert_rate", 2), ("sensitivity", 3), ("specificity", 4), ("ppv", 5)):
            w, g = want[k], pooled.get(k)
            shown = cells[col]
            if w is None:
                ok = g is None and shown.startswith("n/a")
            else:
                ok = g is not None and abs(g - w) < 1e-12 and shown == f"{w:.3f}"
            line += f"; {k} {w if w is None else round(w, 6)} (page {shown[:12]})"
            bad |= not ok
            if not ok:
                print(f"FAIL {task} {k}: numpy {w} metrics.json {g} page '{shown}'")
        if f"{thr:.4g}" != cells[1] or op["text"] not in note or "threshold" not in note:
            print(f"FAIL {task}: page threshold '{cells[1]}' / first line '{note}'")
            bad = 1
        print(line)
    sys.exit(bad)


if __name__ == "__main__":
    main()
