#!/usr/bin/python3
"""Independent oracle for `fedfuse import mimic-iv-ed` (stdlib only: gzip + csv + datetime).

usage: mimic_oracle.py OUT_DIR DEMO_ROOT NSITES

Recomputes from the raw PhysioNet tables, with its own code, what the importer must have
written, and compares:
  - stays, labels (admission / ICU within 24 h of ED outtime / in-hospital death / critical)
    against the README's published counts (222, 150, 64, 8) and stay by stay;
  - the exact multiset of events (stay, code, hours_before, value), built from the leakage
    rule: an event is kept only when its time is strictly before the stay's ED intime (labs:
    charttime and storetime), and every written hours_before is > 0;
  - patients never split across sites or splits (subject_id), sites non-empty;
  - ATTRIBUTION.md / LICENSE.md present (ODbL, both datasets named).
Exits 1 with the first few differences."""
import collections
import csv
import datetime as dt
import gzip
import os
import sys

out_dir, root, nsites = sys.argv[1], sys.argv[2], int(sys.argv[3])
ED = os.path.join(root, "mimic-iv-ed-demo-2.2", "ed")
HOSP = os.path.join(root, "mimic-iv-clinical-database-demo-2.2", "hosp")
ICU = os.path.join(root, "mimic-iv-clinical-database-demo-2.2", "icu")
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)


def table(d, name):
    with gzip.open(os.path.join(d, name + ".csv.gz"), "rt", newline="") as f:
        return list(csv.DictReader(f))


def ts(s):
    return dt.datetime.strptime(s, "%Y-%m-%d %H:%M:%S")


def num(s):
    try:
        v = float(s)
    except ValueError:
        return None
    return v if v == v and abs(v) != float("inf") else None


stays = table(ED, "edstays")
adm = {a["hadm_id"]: a for a in table(HOSP, "admissions")}
icu_by_hadm = collections.defaultdict(list)
for r in table(ICU, "icustays"):
    icu_by_hadm[r["hadm_id"]].append(ts(r["intime"]))

# ---- labels -------------------------------------------------------------------------------
want = {}
for s in stays:
    out = ts(s["outtime"])
    icu = any((t - out).total_seconds() <= 24 * 3600 for t in icu_by_hadm.get(s["hadm_id"], []))
    death = bool(s["hadm_id"]) and adm[s["hadm_id"]]["hospital_expire_flag"] == "1"
    want[s["stay_id"]] = (int(s["disposition"] == "ADMITTED"), int(icu), int(icu or death))
n_death = sum(1 for s in stays if s["hadm_id"] and adm[s["hadm_id"]]["hospital_expire_flag"] == "1")
check(len(stays) == 222, "README: 222 ED stays, raw has %d" % len(stays))
check(sum(v[0] for v in want.values()) == 150, "README: 150 admitted")
check(sum(v[1] for v in want.values()) == 64, "README: 64 ICU within 24 h")
check(n_death == 8, "README: 8 in-hospital deaths")

dirs = [out_dir] if nsites == 0 else [os.path.join(out_dir, "site-%d" % k) for k in range(1, nsites + 1)]
got, site_of, split_of = {}, {}, {}
subject = {s["stay_id"]: s["subject_id"] for s in stays}
for k, d in enumerate(dirs):
    with open(os.path.join(d, "patients.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    check(len(rows) > 0, "%s: no patients" % d)
    for r in rows:
        sid = r["patient_id"]
        check(sid not in got, "stay %s written twice" % sid)
        got[sid] = (int(r["label_admission"]), int(r["label_icu"]), int(r["label_critical"]))
        subj = subject.get(sid)
        check(subj is not None, "unknown stay %s" % sid)
        check(site_of.setdefault(subj, k) == k, "a patient's stays are in two sites")
        check(split_of.setdefault(subj, r["split"]) == r["split"], "a patient's stays are in two splits")
check(got == want, "labels differ on %d stays" % sum(1 for k in want if got.get(k) != want[k]))
print("stays %d, admitted %d, icu24 %d, deaths %d, critical %d; sites %d, patients %d" % (
    len(got), sum(v[0] for v in got.values()), sum(v[1] for v in got.values()), n_death,
    sum(v[2] for v in got.values()), len(dirs), len(site_of)))

# ---- events: the leakage rule, recomputed -------------------------------------------------
stays_of = collections.defaultdict(list)
for s in stays:
    stays_of[s["subject_id"]].append((s["stay_id"], ts(s["intime"])))
expect = collections.Counter()


def add(subject_id, when, code, value, avail=None):
    avail = avail or when
    for stay_id, intime in stays_of.get(subject_id, []):
        if avail < intime:
            h = (intime - when).total_seconds() / 3600.0
            assert h > 0
            expect[(stay_id, "%.6f" % h, code, "" if value is None else "%.10g" % value)] += 1


disch = {a["hadm_id"]: ts(a["dischtime"]) for a in adm.values()}
for r in table(HOSP, "diagnoses_icd"):
    add(r["subject_id"], disch[r["hadm_id"]], "ICD%s:%s" % (r["icd_version"], r["icd_code"]), None)
items = {r["itemid"] for r in table(HOSP, "d_labitems")}
for r in table(HOSP, "labevents"):
    if r["itemid"] in items:
        chart = ts(r["charttime"])
        store = ts(r["storetime"]) if r["storetime"] else chart
        add(r["subject_id"], chart, "LAB:" + r["itemid"], num(r["valuenum"]), max(chart, store))
for r in table(ED, "vitalsign"):
    for c in ("temperature", "heartrate", "resprate", "o2sat", "sbp", "dbp", "pain"):
        v = num(r[c])
        if v is not None:
            add(r["subject_id"], ts(r["charttime"]), "VITAL:" + c, v)

written = collections.Counter()
nonpositive = 0
for d in dirs:
    with open(os.path.join(d, "events.csv"), newline="") as f:
        for r in csv.DictReader(f):
            if not float(r["hours_before"]) > 0:
                nonpositive += 1
            v = "" if r["value"] == "" else "%.10g" % float(r["value"])
            written[(r["patient_id"], r["hours_before"], r["code"], v)] += 1
check(nonpositive == 0, "%d events at or after the index time" % nonpositive)
missing, extra = expect - written, written - expect
check(not missing and not extra, "events: %d expected but not written, %d written but not expected"
      % (sum(missing.values()), sum(extra.values())))
print("events %d (expected %d): lab %d, diagnosis %d, vital %d" % (
    sum(written.values()), sum(expect.values()),
    sum(n for k, n in written.items() if k[2].startswith("LAB:")),
    sum(n for k, n in written.items() if k[2].startswith("ICD")),
    sum(n for k, n in written.items() if k[2].startswith("VITAL:"))))

# ---- notes and attribution ----------------------------------------------------------------
cc = {r["stay_id"]: r["chiefcomplaint"] for r in table(ED, "triage")}
for d in dirs:
    with open(os.path.join(d, "notes.csv"), newline="") as f:
        for r in csv.DictReader(f):
            check(r["text"].startswith(cc[r["patient_id"]]), "note does not start with the complaint")
for d in sorted(set([out_dir] + dirs)):
    for name in ("ATTRIBUTION.md", "LICENSE.md"):
        p = os.path.join(d, name)
        text = open(p).read() if os.path.exists(p) else ""
        check("ODbL" in text, "%s missing or without ODbL" % p)
    text = open(os.path.join(d, "ATTRIBUTION.md")).read()
    check("MIMIC-IV-ED Demo" in text and "MIMIC-IV Clinical Database Demo" in text,
          "ATTRIBUTION.md must name both datasets")

for m in failures[:10]:
    print("FAIL:", m)
sys.exit(1 if failures else 0)
