#!/bin/bash
# Bring-your-own-data runs of `fedfuse simulate` (issue 23; label integration).
#   unlabelled  three existing site folders named hospital-a..c given with --site, secure
#               aggregation on; label_icu is empty everywhere (an unlabelled task) and
#               label_critical is 0 for every test patient (one class). simulate exits 0 and
#               writes metrics.json, report.html and comparison.json; no JSON file holds NaN;
#               icu and critical are null with their reason under "undefined" in metrics.json,
#               comparison.json and the audit log's evaluation entries, and the report says
#               "undefined"; admission is defined. The folders are byte-identical afterwards.
#   tasks       the acceptance test of declared tasks: multiclass, regression, survival and an
#               unlabelled binary task on hospital-a..c with secure aggregation; every metric
#               (federated and `fedfuse eval`) against scikit-learn (tasks_oracle.py)
#   tabular     the tabular modality alone (issue 23 item 2): hospital-a..c hold only
#               patients.csv and tabular.csv (numeric features in per-site units, missing
#               values, a categorical); simulate with secure aggregation and baselines, then
#               `fedfuse eval --predictions`: pooled test AUROC within 0.02 of scikit-learn's
#               logistic regression on the same rows (tabular_oracle.py)
#   refuse      data.dir holding hospital-a..c (no site-1) stops with exit 2 and writes nothing
#               into it; a missing --site folder and a folder without patients.csv stop with
#               exit 2 before the run folder is made; data.site_dirs in the config works like --site.
set -u
mode=$1 fedfuse=$2 src=$3
. "$(dirname "$0")/lib.sh"
fed_init byodtest 5 '*/logs/*.log'

# three site folders under other names, from a small synthetic cohort
mksites() {
    "$fedfuse" synth --sites 3 --patients "${1:-80}" --seed 3 --image-size 16 --out "$tmp/gen" > /dev/null ||
        fail "synth"
    mkdir -p "$tmp/data"
    local i=1 h
    for h in a b c; do
        mv "$tmp/gen/site-$i" "$tmp/data/hospital-$h"
        rm -f "$tmp/data/hospital-$h/oracle.csv"
        i=$((i + 1))
    done
    # label_icu empty everywhere; label_critical 0 on the test split
    $py - "$tmp"/data/hospital-* <<'EOP' || fail "edit labels"
import csv, sys
for d in sys.argv[1:]:
    rows = list(csv.DictReader(open(d + "/patients.csv", newline="")))
    for r in rows:
        r["label_icu"] = ""
        if r["split"] == "test":
            r["label_critical"] = "0"
    with open(d + "/patients.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
EOP
}

mkconf() { # extra lines on stdin
    cat > "$tmp/demo.yaml" <<EOC
secure_aggregation: {enabled: true}
run_name: byod
model_config: $src/configs/model-tiny.yaml
rounds: 2
seed: 5
plan: {local_steps: 5, batch_size: 16, lr: 0.002}
min_sites: 2
deadlines: {train: 60, evaluate: 60}
baselines: true
timeout: 200
EOC
    cat >> "$tmp/demo.yaml"
}

# simulate on hospital-a..c into $tmp/a; the run's files must exist
simulate_abc() {
    "$fedfuse" simulate --config "$tmp/demo.yaml" --out "$tmp/a" --site "$tmp/data/hospital-a" \
        --site "$tmp/data/hospital-b" --site "$tmp/data/hospital-c" > "$tmp/sim.txt" 2>&1 ||
        { cat "$tmp/sim.txt"; fail "simulate exit"; }
    cat "$tmp/sim.txt"
    local f
    for f in metrics.json report.html comparison.json audit.jsonl; do
        [ -s "$tmp/a/$f" ] || fail "missing $f"
    done
}

tree_hash() { (cd "$tmp/data" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum); }

case $mode in
unlabelled)
    mksites
    mkconf < /dev/null
    before=$(tree_hash)
    "$fedfuse" simulate --config "$tmp/demo.yaml" --out "$tmp/a" --site "$tmp/data/hospital-a" \
        --site "$tmp/data/hospital-b" --site "$tmp/data/hospital-c/" > "$tmp/sim.txt" 2>&1 ||
        { cat "$tmp/sim.txt"; fail "simulate exit"; }
    cat "$tmp/sim.txt"
    for f in metrics.json report.html comparison.json audit.jsonl receipts/hospital-a-round-0002.json; do
        [ -s "$tmp/a/$f" ] || fail "missing $f"
    done
    [ "$before" = "$(tree_hash)" ] || fail "the site folders changed"
    [ "$(ls "$tmp/data")" = "$(printf 'hospital-a\nhospital-b\nhospital-c')" ] || fail "something was written into the data folder"
    grep -q "undefined" "$tmp/sim.txt" || fail "console does not say undefined"
    grep -qi "nan" "$tmp/sim.txt" && fail "console prints nan"
    grep -q "undefined" "$tmp/a/report.html" || fail "report does not say undefined"
    verify "$tmp/a"
    $py - "$tmp/a" <<'EOP' || fail "undefined tasks"
import json, sys
out = sys.argv[1]
def strict(path):  # Python's json accepts NaN/Infinity unless told not to
    def bad(c): raise ValueError(f"{path}: {c} in the file")
    return json.load(open(path), parse_constant=bad)
m = strict(out + "/metrics.json")
c = strict(out + "/comparison.json")
strict(out + "/fedeval.json")
assert isinstance(m["auroc"]["admission"], float), m["auroc"]
for t in ("icu", "critical"):
    assert m["auroc"][t] is None, (t, m["auroc"])
    assert m["undefined"][t], (t, m["undefined"])
    assert m["tasks"][t]["pooled"]["undefined"]["auroc"], m["tasks"][t]["pooled"]
    for k in ("federated", "pooled", "local_only_mean"):
        assert c[k][t] is None and c[k]["undefined"][t], (k, t, c[k])
    for h, v in c["local_only"].items():
        assert v[t] is None and v["undefined"][t], (h, t, v)
assert "admission" not in m["undefined"]
print("metrics.json undefined:", m["undefined"])
ev = []
for l in open(out + "/audit.jsonl"):
    e = json.loads(l, parse_constant=lambda c: 1 / 0)
    if e["event"] == "evaluation":
        ev.append(e["data"])
assert [d["round"] for d in ev] == [1, 2], ev
for d in ev:
    assert d["auroc"]["icu"] is None and d["undefined"]["icu"], d
    assert d["auroc"]["critical"] is None and d["undefined"]["critical"], d
    assert isinstance(d["auroc"]["admission"], float), d
print("audit evaluation entries:", ev[-1])
EOP
    ;;
tasks)
    # one task of every kind (multiclass, regression missing at one site, survival with
    # censoring, an unlabelled binary task), secure aggregation on, folders hospital-a..c;
    # every metric against scikit-learn and an independent C-index (tasks_oracle.py)
    mksites 200
    $py "$src/tests/fed/tasks_oracle.py" labels "$tmp"/data/hospital-* || fail "task labels"
    mkconf < /dev/null
    sed -i "s|^model_config: .*|model_config: $src/tests/fed/data/model-tasks.yaml|" "$tmp/demo.yaml"
    simulate_abc
    grep -qi "nan" "$tmp/sim.txt" && fail "console prints nan"
    grep -q "Task grade (multiclass)" "$tmp/a/report.html" || fail "report has no grade line"
    # each round's console line (and the coordinator's log) names every task's headline by
    # kind, as fedeval.json holds it, with the unlabelled task undefined and its reason
    $py - "$tmp/a" "$tmp/sim.txt" <<'EOP' || fail "round lines"
import json, sys
out, sim = sys.argv[1], open(sys.argv[2]).read().splitlines()
log = open(out + "/logs/coordinator.log").read()
label = {"macro_auroc": "macro AUROC", "r2": "R²", "cindex": "C-index"}
for e in json.load(open(out + "/fedeval.json"))["rounds"]:
    r = e["round"]
    line = [l for l in sim if l.startswith(f"round {r}/2: ")]
    assert len(line) == 1, (r, sim)
    want = [f"flag AUROC undefined ({e['undefined']['flag']})"]
    assert e["auroc"]["flag"] is None
    for t, h in e["headline"].items():
        v = h["value"]
        want.append(f"{t} {label[h['metric']]} " +
                    (f"{v:.3f}" if v is not None else f"undefined ({e['undefined'][t]})"))
    assert {"grade", "los", "death"} <= set(e["headline"]), e["headline"]
    text = "pooled test " + ", ".join(want)
    assert text in line[0], (line[0], text)
    assert f"round {r}: {text}" in log, (r, text)
    print("round line:", line[0])
EOP
    grep -q "undefined" "$tmp/a/report.html" || fail "report does not say undefined"
    verify "$tmp/a"
    "$fedfuse" eval --config "$src/tests/fed/data/model-tasks.yaml" --weights "$tmp/a/model.safetensors" \
        --data "$tmp/data/hospital-a" --data "$tmp/data/hospital-b" --data "$tmp/data/hospital-c" \
        --bootstrap 0 --predictions --out "$tmp/ev" > "$tmp/ev.txt" 2>&1 || { cat "$tmp/ev.txt"; fail "eval"; }
    cat "$tmp/ev.txt"
    grep -q "^auroc_flag undefined" "$tmp/ev.txt" || fail "eval does not print flag undefined"
    $py "$src/tests/fed/tasks_oracle.py" check "$tmp/a" "$tmp/ev" "$tmp"/data/hospital-* ||
        fail "metrics against scikit-learn"
    ;;
tabular)
    mkdir -p "$tmp/data/hospital-a" "$tmp/data/hospital-b" "$tmp/data/hospital-c"
    $py "$src/tests/fed/tabular_oracle.py" make "$tmp"/data/hospital-* || fail "make sites"
    mkconf < /dev/null
    sed -i -e "s|^model_config: .*|model_config: $src/tests/fed/data/model-tabular-only.yaml|" \
        -e "s|^rounds: .*|rounds: 5|" -e "s|^plan: .*|plan: {local_steps: 30, batch_size: 32, lr: 0.003}|" \
        "$tmp/demo.yaml"
    simulate_abc
    verify "$tmp/a"
    "$fedfuse" eval --config "$src/tests/fed/data/model-tabular-only.yaml" --weights "$tmp/a/model.safetensors" \
        --data "$tmp/data/hospital-a" --data "$tmp/data/hospital-b" --data "$tmp/data/hospital-c" \
        --bootstrap 0 --predictions --out "$tmp/ev" > "$tmp/ev.txt" 2>&1 || { cat "$tmp/ev.txt"; fail "eval"; }
    $py "$src/tests/fed/tabular_oracle.py" check "$tmp/ev" 0.02 "$tmp"/data/hospital-* ||
        fail "tabular AUROC against scikit-learn"
    ;;
refuse)
    mksites
    before=$(tree_hash)
    # data.dir that holds other folders: refused, nothing generated into it
    printf 'data: {dir: %s, sites: 3, patients: 60, seed: 3}\n' "$tmp/data" | mkconf
    "$fedfuse" simulate --config "$tmp/demo.yaml" --out "$tmp/o1" > "$tmp/r1.txt" 2>&1
    rc=$?; cat "$tmp/r1.txt"
    [ $rc = 2 ] || fail "data.dir without site-1: exit $rc, want 2"
    grep -q "holds no site-1 folder" "$tmp/r1.txt" || fail "data.dir message"
    [ "$before" = "$(tree_hash)" ] || fail "simulate wrote into the data folder"
    [ -e "$tmp/data/site-1" ] && fail "a cohort was generated into the data folder"
    # a missing folder and a folder without patients.csv: exit 2, nothing started
    mkconf < /dev/null
    "$fedfuse" simulate --config "$tmp/demo.yaml" --out "$tmp/o2" --site "$tmp/data/hospital-a" \
        --site "$tmp/data/hospital-x" > "$tmp/r2.txt" 2>&1
    rc=$?; cat "$tmp/r2.txt"
    [ $rc = 2 ] || fail "missing site folder: exit $rc, want 2"
    grep -q "fedfuse: error: site folder $tmp/data/hospital-x: No such file or directory" "$tmp/r2.txt" ||
        fail "missing folder message"
    [ -e "$tmp/o2" ] && fail "the run folder was made before the site folders were checked"
    mkdir "$tmp/empty"
    "$fedfuse" simulate --config "$tmp/demo.yaml" --out "$tmp/o3" --site "$tmp/data/hospital-a" \
        --site "$tmp/empty" > "$tmp/r3.txt" 2>&1
    rc=$?; cat "$tmp/r3.txt"
    [ $rc = 2 ] || fail "folder without patients.csv: exit $rc, want 2"
    grep -q "site folder $tmp/empty: cannot read patients.csv" "$tmp/r3.txt" || fail "empty folder message"
    [ -e "$tmp/o3" ] && fail "the run folder was made before the site folders were checked"
    # data.site_dirs: the same check from the config
    printf 'data: {site_dirs: [%s, %s]}\n' "$tmp/data/hospital-a" "$tmp/nope" | mkconf
    "$fedfuse" simulate --config "$tmp/demo.yaml" --out "$tmp/o4" > "$tmp/r4.txt" 2>&1
    rc=$?; cat "$tmp/r4.txt"
    [ $rc = 2 ] || fail "data.site_dirs with a missing folder: exit $rc, want 2"
    grep -q "site folder $tmp/nope" "$tmp/r4.txt" || fail "site_dirs message"
    [ "$before" = "$(tree_hash)" ] || fail "simulate wrote into the data folder"
    ;;
*) fail "unknown mode $mode" ;;
esac
echo PASS
