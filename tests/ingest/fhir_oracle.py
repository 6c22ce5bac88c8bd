#!/usr/bin/python3
"""fedfuse import fhir against an independent re-derivation (Python standard library only).

The shared export (10 Synthea patients) has no Observation or DiagnosticReport files: this test
adds its own, written as Synthea writes them (vital-signs and laboratory Observations with LOINC
codes and UCUM quantities, the blood-pressure panel with components, a survey Observation, one
entered-in-error; DiagnosticReports with a base64 text/plain presentedForm), including
resources exactly at and after the index time, which the leakage rule must keep out.

Then it re-derives from the raw NDJSON, with json + datetime + base64: every patients.csv row
(age, sex, split, the three labels), the exact multiset of (visit, hours_before, code, value)
events, each visit's note, and the summary counts; runs `data check --strict` on the output,
and does the same with a rules file (a Condition-code label, other classes).

usage: fhir_oracle.py FEDFUSE SAMPLE_DIR WORK_DIR [CONFIG]
"""
import base64
import collections
import csv
import datetime as dt
import json
import os
import shutil
import sys

from oracle_util import FAILS, check, run

FEDFUSE, SAMPLE, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
CONFIG = sys.argv[4] if len(sys.argv) > 4 else "configs/model-tiny.yaml"


def ptime(s):
    """FHIR date/dateTime to an aware UTC datetime (partial dates: period start, UTC)."""
    if len(s) == 4:
        s += "-01-01"
    if len(s) == 7:
        s += "-01"
    if len(s) == 10:
        return dt.datetime.fromisoformat(s).replace(tzinfo=dt.timezone.utc)
    t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.replace(microsecond=0)


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S-05:00")


def lines(path):
    with open(path) as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


# --- Synthea-style Observations and DiagnosticReports -----------------------------------------
def quantity(v, unit):
    return {"value": v, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}


def observation(oid, pid, enc, when, category, code, display, value=None, unit=None,
                components=None, status="final"):
    r = {"resourceType": "Observation", "id": oid,
         "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-vital-signs"]},
         "status": status,
         "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                   "code": category, "display": category}]}],
         "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}],
                  "text": display},
         "subject": {"reference": f"Patient/{pid}"},
         "encounter": {"reference": f"Encounter/{enc}"},
         "effectiveDateTime": iso(when), "issued": iso(when)[:19] + ".000-05:00"}
    if value is not None:
        r["valueQuantity"] = quantity(value, unit)
    if components:
        r["component"] = [{"code": {"coding": [{"system": "http://loinc.org", "code": c,
                                                "display": d}], "text": d},
                           "valueQuantity": quantity(v, "mm[Hg]")} for c, d, v in components]
    return r


def report(rid, pid, enc, when, text):
    return {"resourceType": "DiagnosticReport", "id": rid, "status": "final",
            "category": [{"coding": [{"system": "http://loinc.org", "code": "34117-2",
                                      "display": "History and physical note"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "34117-2",
                                 "display": "History and physical note"}]},
            "subject": {"reference": f"Patient/{pid}"},
            "encounter": {"reference": f"Encounter/{enc}"},
            "effectiveDateTime": iso(when), "issued": iso(when)[:19] + ".123-05:00",
            "presentedForm": [{"contentType": "text/plain; charset=utf-8",
                               "data": base64.b64encode(text.encode()).decode()}]}


def make_export(dst):
    shutil.copytree(SAMPLE, dst)
    emer = [e for e in lines(os.path.join(SAMPLE, "Encounter.000.ndjson"))
            if e["class"]["code"] == "EMER"]
    obs, reps, n = [], [], 0
    for k, e in enumerate(emer):
        pid = e["subject"]["reference"].split("/")[1]
        start = ptime(e["period"]["start"])
        for off_h, tag in ((-50.5, "before"), (0, "at"), (1, "after")):
            t = start + dt.timedelta(hours=off_h)
            n += 1
            obs.append(observation(f"obs-{n}", pid, e["id"], t, "vital-signs", "8867-4",
                                   "Heart rate", 70 + k + off_h, "/min"))
            n += 1
            obs.append(observation(f"obs-{n}", pid, e["id"], t, "vital-signs", "85354-9",
                                   "Blood pressure panel", components=[
                                       ("8462-4", "Diastolic Blood Pressure", 80 + k),
                                       ("8480-6", "Systolic Blood Pressure", 120.5 + k)]))
        t = start - dt.timedelta(days=10, seconds=1)
        for code, name, v, unit in (("38483-4", "Creatinine", 1.1 + k / 10, "mg/dL"),
                                    ("2339-0", "Glucose", 95 + k, "mg/dL"),
                                    ("1234-5", "A lab without a mapping", 3, "1")):
            n += 1
            obs.append(observation(f"obs-{n}", pid, e["id"], t, "laboratory", code, name, v, unit))
        n += 1
        obs.append(observation(f"obs-{n}", pid, e["id"], t, "survey", "72166-2",
                               "Tobacco smoking status"))
        n += 1
        obs.append(observation(f"obs-{n}", pid, e["id"], t, "vital-signs", "8867-4", "Heart rate",
                               300, "/min", status="entered-in-error"))
        reps.append(report(f"rep-{k}-a", pid, e["id"], start - dt.timedelta(hours=3),
                           f"Chest pain since morning, visit {k}. Denies fever."))
        reps.append(report(f"rep-{k}-b", pid, e["id"], start, "Written at arrival: excluded."))
    with open(os.path.join(dst, "Observation.000.ndjson"), "w") as f:
        for r in obs:
            f.write(json.dumps(r) + "\n")
        f.write("{not json\n")
    with open(os.path.join(dst, "DiagnosticReport.000.ndjson"), "w") as f:
        for r in reps:
            f.write(json.dumps(r) + "\n")


# --- the re-derivation --------------------------------------------------------------------
LOINC = "http://loinc.org"
DEFAULT_CODES = {
    "8867-4": "VITAL:heartrate", "9279-1": "VITAL:resprate", "2708-6": "VITAL:o2sat",
    "59408-5": "VITAL:o2sat", "8480-6": "VITAL:sbp", "8462-4": "VITAL:dbp",
    "8310-5": "VITAL:temperature", "72514-3": "VITAL:pain", "29463-7": "VITAL:weight",
    "8302-2": "VITAL:height", "39156-5": "VITAL:bmi", "2339-0": "LAB:glucose",
    "2345-7": "LAB:glucose", "38483-4": "LAB:creatinine", "2160-0": "LAB:creatinine"}
PREFIX = {"http://loinc.org": "LOINC", "http://snomed.info/sct": "SCT",
          "http://www.nlm.nih.gov/research/umls/rxnorm": "RXNORM"}

DEFAULT_RULES = {"index": {"EMER"}, "categories": {"vital-signs", "laboratory"}, "seed": 1,
                 "labels": [{"classes": {"IMP"}, "types": set(), "conds": set(), "hours": 24,
                             "death_days": 0},
                            {"classes": set(), "types": {"305351004"}, "conds": set(),
                             "hours": 24, "death_days": 0},
                            {"classes": set(), "types": {"305351004"}, "conds": set(),
                             "hours": 24, "death_days": 30}],
                 "codes": {}}


def fnv(s):
    h = 2166136261
    for b in s.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def first(cc):
    for c in (cc or {}).get("coding", []):
        if c.get("code"):
            return c.get("system", ""), c["code"]
    return None


def derive(export, rules):
    codes = {(LOINC, k): v for k, v in DEFAULT_CODES.items()}
    codes.update(rules["codes"])

    def ev_code(sys_, code):
        return codes.get((sys_, code)) or f"{PREFIX.get(sys_, 'CODE')}:{code}"

    pats = {}
    for p in lines(os.path.join(export, "Patient.000.ndjson")):
        pats[p["id"]] = p
    visits, by_pat, encs = [], collections.defaultdict(list), []
    for e in lines(os.path.join(export, "Encounter.000.ndjson")):
        pid = e["subject"]["reference"].split("/")[1]
        encs.append((pid, ptime(e["period"]["start"]), e["class"]["code"],
                     {first(t)[1] for t in e.get("type", []) if first(t)}))
        if e["class"]["code"] in rules["index"]:
            v = {"id": e["id"], "pid": pid, "start": ptime(e["period"]["start"]),
                 "labels": [0, 0, 0], "events": [], "note": None}
            visits.append(v)
            by_pat[pid].append(v)
    counts = collections.Counter()
    for v in visits:
        for k, lr in enumerate(rules["labels"]):
            end = v["start"] + dt.timedelta(hours=lr["hours"])
            for pid, s, cls, types in encs:
                if pid == v["pid"] and v["start"] <= s <= end and (cls in lr["classes"] or
                                                                    types & lr["types"]):
                    v["labels"][k] = 1
            d = pats[v["pid"]].get("deceasedDateTime")
            if lr["death_days"] and d and v["start"] <= ptime(d) <= \
                    v["start"] + dt.timedelta(days=lr["death_days"]):
                v["labels"][k] = 1

    def add(pid, t, code, value, kind):
        n = 0
        for v in by_pat[pid]:
            if t < v["start"]:
                hours = (v["start"] - t).total_seconds() / 3600
                v["events"].append((code, f"{hours:.6f}", "" if value is None else value))
                n += 1
        return n

    tkeys = {"Condition": ("onsetDateTime", "recordedDate"), "MedicationRequest": ("authoredOn",),
             "Procedure": ("performedDateTime", "performedPeriod"),
             "Observation": ("effectiveDateTime", "issued")}
    for kind in ("Condition", "MedicationRequest", "Procedure", "Observation"):
        path = os.path.join(export, f"{kind}.000.ndjson")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            for line in f:
                try:
                    r = json.loads(line)
                except ValueError:
                    counts[(kind, "json")] += 1
                    continue
                if r.get("status") == "entered-in-error":
                    counts[(kind, "error")] += 1
                    continue
                pid = r["subject"]["reference"].split("/")[1]
                tv = next(r[k] for k in tkeys[kind] if k in r)
                t = ptime(tv["start"] if isinstance(tv, dict) else tv)
                sys_, code = first(r.get("medicationCodeableConcept") if kind ==
                                   "MedicationRequest" else r["code"])
                if kind == "Observation" and not any(
                        first(c)[1] in rules["categories"] for c in r.get("category", [])):
                    counts[(kind, "category")] += 1
                    continue
                if kind == "Condition":
                    for k, lr in enumerate(rules["labels"]):
                        if code in lr["conds"]:
                            for v in by_pat[pid]:
                                if v["start"] <= t <= v["start"] + dt.timedelta(hours=lr["hours"]):
                                    v["labels"][k] = 1
                if not by_pat[pid]:
                    counts[(kind, "novisit")] += 1
                    continue
                n = 0
                if r.get("component") and "valueQuantity" not in r:
                    for c in r["component"]:
                        cs, cc = first(c["code"])
                        n += add(pid, t, ev_code(cs, cc), c["valueQuantity"]["value"], kind)
                else:
                    val = r.get("valueQuantity", {}).get("value")
                    n += add(pid, t, ev_code(sys_, code), val, kind)
                counts[(kind, "used" if n else "after")] += 1
    for kind, arr, tk in (("DocumentReference", "content", "date"),
                          ("DiagnosticReport", "presentedForm", "issued")):
        path = os.path.join(export, f"{kind}.000.ndjson")
        if not os.path.exists(path):
            continue
        for r in lines(path):
            pid = r["subject"]["reference"].split("/")[1]
            t = ptime(r[tk])
            att = [a.get("attachment", a) for a in r[arr]]
            text = next(base64.b64decode(a["data"]).decode() for a in att
                        if a["contentType"].startswith("text/plain"))
            used = False
            for v in by_pat[pid]:
                if t < v["start"] and (v["note"] is None or t > v["note"][0]):
                    v["note"] = (t, text)
                    used = True
            counts[(kind, "used" if used else "after" if by_pat[pid] else "novisit")] += 1
    rows = {}
    for v in visits:
        if not v["events"] and v["note"] is None:
            counts["empty"] += 1
            continue
        p = pats[v["pid"]]
        b = dt.date.fromisoformat(p["birthDate"])
        s = v["start"].date()
        age = s.year - b.year - ((s.month, s.day) < (b.month, b.day))
        bucket = fnv(f"{rules['seed']}:{v['pid']}") % 10
        split = "train" if bucket < 6 else "val" if bucket < 8 else "test"
        sex = {"female": "F", "male": "M", "other": "X"}.get(p.get("gender"), "U")
        rows[v["id"]] = v | {"age": age, "sex": sex, "split": split}
    return rows, counts


def compare(site, rows, label):
    with open(os.path.join(site, "patients.csv")) as f:
        got = {r["patient_id"]: r for r in csv.DictReader(f)}
    check(set(got) == set(rows), f"{label}: the same {len(rows)} visits in patients.csv")
    bad = [k for k, r in rows.items() if k in got and (
        int(got[k]["age"]) != r["age"] or got[k]["sex"] != r["sex"] or
        got[k]["split"] != r["split"] or
        [int(got[k][c]) for c in ("label_admission", "label_icu", "label_critical")] != r["labels"])]
    check(not bad, f"{label}: age, sex, split and labels of every visit ({len(bad)} differ)")
    want = collections.Counter()
    for k, r in rows.items():
        for code, hours, value in r["events"]:
            want[(k, hours, code, "" if value == "" else float(value))] += 1
    have = collections.Counter()
    with open(os.path.join(site, "events.csv")) as f:
        for r in csv.DictReader(f):
            have[(r["patient_id"], r["hours_before"], r["code"],
                  "" if r["value"] == "" else float(r["value"]))] += 1
    check(have == want, f"{label}: events.csv equals the re-derived multiset "
          f"({sum(want.values())} events; {sum((have - want).values())} extra, "
          f"{sum((want - have).values())} missing)")
    if have != want:
        print("  extra:", sorted(have - want)[:4], "\n  missing:", sorted(want - have)[:4])
    check(all(float(h) > 0 for _, h, _, _ in have), f"{label}: every hours_before > 0")
    with open(os.path.join(site, "notes.csv")) as f:
        notes = {r["patient_id"]: r["text"] for r in csv.DictReader(f)}
    wantn = {k: r["note"][1] for k, r in rows.items() if r["note"]}
    check(notes == wantn, f"{label}: notes.csv holds each visit's latest earlier note "
          f"({len(wantn)} notes)")
    return have


def main():
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    export = os.path.join(WORK, "export")
    make_export(export)

    site = os.path.join(WORK, "site")
    p = run(FEDFUSE, "import", "fhir", "--in", export, "--out", site)
    print(p.stdout, end="")
    rows, counts = derive(export, DEFAULT_RULES)
    have = compare(site, rows, "default rules")
    check("VITAL:heartrate" in {c for _, _, c, _ in have} and
          "LAB:creatinine" in {c for _, _, c, _ in have} and
          "LOINC:1234-5" in {c for _, _, c, _ in have} and
          "VITAL:sbp" in {c for _, _, c, _ in have}, "LOINC mapping, BP components, unmapped prefix")
    out = p.stdout
    ntotal = sum(len(r["events"]) for r in rows.values())
    check(f"events: {ntotal} " in out, f"summary event count {ntotal}")
    check(f"labels: admission {sum(r['labels'][0] for r in rows.values())}, icu "
          f"{sum(r['labels'][1] for r in rows.values())}, critical "
          f"{sum(r['labels'][2] for r in rows.values())}" in out, "summary label counts")

    def line_count(kind, reason):
        sect = out.split("\n" + kind)[1].split("\n")
        for ln in sect[1:]:
            if not ln.startswith("  "):
                break
            if ln.strip().startswith(reason):
                return int(ln.split()[-1])
        return 0

    check(line_count("Observation", "observation category not kept") == counts[("Observation", "category")]
          and line_count("Observation", "status entered-in-error") == counts[("Observation", "error")]
          and line_count("Observation", "malformed JSON line") == 1
          and line_count("Observation", "at or after every index visit") == counts[("Observation", "after")]
          and line_count("DiagnosticReport", "at or after every index visit") == counts[("DiagnosticReport", "after")]
          and line_count("Condition", "patient without an index visit") == counts[("Condition", "novisit")],
          "skipped resources counted by reason as re-derived")

    p = run(FEDFUSE, "data", "check", site, "--strict", "--config", CONFIG, ok=False)
    check(p.returncode == 0 and "usable (strict mode" in p.stdout, "data check --strict on the import")

    # A rules file: a Condition-code label, deaths within a year, inpatient or emergency.
    rules = os.path.join(WORK, "rules.yaml")
    open(rules, "w").write("""index_classes: [EMER, IMP]
observation_categories: [vital-signs]
split_seed: 7
labels:
  admission: {encounter_classes: [IMP], within_hours: 48}
  icu: {condition_codes: ['91302008', '49727002'], within_hours: 72}
  critical: {death_within_days: 365}
codes:
  - {system: 'http://loinc.org', code: '1234-5', event: 'LAB:special'}
""")
    site2 = os.path.join(WORK, "site-rules")
    run(FEDFUSE, "import", "fhir", "--in", export, "--rules", rules, "--out", site2)
    r2 = {"index": {"EMER", "IMP"}, "categories": {"vital-signs"}, "seed": 7,
          "labels": [{"classes": {"IMP"}, "types": set(), "conds": set(), "hours": 48, "death_days": 0},
                     {"classes": set(), "types": set(), "conds": {"91302008", "49727002"},
                      "hours": 72, "death_days": 0},
                     {"classes": set(), "types": set(), "conds": set(), "hours": 24,
                      "death_days": 365}],
          "codes": {(LOINC, "1234-5"): "LAB:special"}}
    rows2, _ = derive(export, r2)
    compare(site2, rows2, "rules file")
    check(sum(r["labels"][1] for r in rows2.values()) > 0, "the Condition-code label fires")

    # Refusals and strictness.
    p = run(FEDFUSE, "import", "fhir", "--in", export, "--out", site, ok=False)
    check(p.returncode == 1 and "patients.csv: already exists" in p.stderr, "second import refused")
    p = run(FEDFUSE, "import", "fhir", "--in", export, "--out", os.path.join(WORK, "s"),
            "--strict", ok=False)
    check(p.returncode == 2 and "Observation.000.ndjson:" in p.stderr and
          "malformed JSON line" in p.stderr, "--strict names FILE:LINE of the broken line")
    bad = os.path.join(WORK, "bad.yaml")
    open(bad, "w").write("index_classes: [EMER]\nobservation_categories: [laboratory]\n"
                         "labels: {admission: {within_hourz: 3}}\n")
    p = run(FEDFUSE, "import", "fhir", "--in", export, "--rules", bad, "--out",
            os.path.join(WORK, "s2"), ok=False)
    check(p.returncode == 2 and "bad.yaml:3:" in p.stderr, "a wrong rules key names FILE:LINE")

    print(f"{len(FAILS)} failed" if FAILS else "all FHIR oracle checks passed")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
