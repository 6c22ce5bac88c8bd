#!/usr/bin/env bash
# Statistics jobs end to end (docs/statistics.md): real coordinator and client processes over
# mutual TLS, secure aggregation on, every released number checked with numpy
# (stats_oracle.py). Usage: stats_test.sh MODE FEDFUSE SOURCE_DIR
#   demo     the demo query over a small synthetic cohort: pooled statistics vs numpy,
#            suppressed cells absent from stats.json and the audit log, the log verifies
#   tcga     Kaplan-Meier of Fed-TCGA-BRCA's six regions vs a numpy product-limit estimator
#   refuse   a site whose policy does not allow a column refuses; the reason reaches the
#            coordinator (stats.json refusals, its log) and the others' sum is still released
#   differencing  two overlapping queries differing by one patient at a site: the second is
#            refused there as a differencing attempt
#   dp       a noised query (tests/stats/data/query-dp.yaml) with per-site results: noise scale
#            and epsilon against the closed forms, released numbers within their stated bound
#            of numpy's exact ones, epsilon in stats.json, the audit log and every ledger
#            (stats_dp_oracle.py). The noise seed is fixed (FEDFUSE_TEST_NOISE_SEED=20261208)
#            only so that "some numbers differ from exact" is a fixed fact, not a draw
#   dp_required  sites whose policy has dp.required refuse the noiseless demo query (the
#            reason at the coordinator) and accept the noised one
#   dp_budget  sites with dp.max_epsilon 1.2 run one epsilon-1 query, then refuse a second
#            one (budget reason at the coordinator, ledger unchanged)
set -euo pipefail
mode=$1 ff=$2 src=$3
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
oracle="$py $src/tests/stats/stats_oracle.py"

case $mode in
demo)
  "$ff" synth --sites 3 --patients 300 --seed 5 --out "$tmp/data" >/dev/null 2>&1
  "$ff" stats --query "$src/configs/stats-demo.yaml" --site "$tmp/data/site-1" \
    --site "$tmp/data/site-2" --site "$tmp/data/site-3" --out "$tmp/out" --min-cell 5 --per-site
  STATS_WANT_PER_SITE=1 $oracle demo "$tmp/out" "$tmp/data/site-1" "$tmp/data/site-2" "$tmp/data/site-3"
  "$ff" audit verify --log "$tmp/out/audit.jsonl" --ca "$tmp/out/pki/ca.pem"
  grep -q "<svg" "$tmp/out/stats.html"
  if grep -E -q "NaN|undefined|null" "$tmp/out/stats.html"; then
    echo "FAIL: stats.html shows NaN, undefined or null"; exit 1
  fi
  ;;
tcga)
  data=$src/../shared/data/flamby/tcga-brca
  [ -f "$data/brca.csv" ] || { echo "skipped: $data is not there"; exit 77; }
  "$ff" import flamby --dataset tcga-brca --in "$data" --out "$tmp/tcga" >/dev/null
  sites=()
  for k in 0 1 2 3 4 5; do
    # every patient of the region: the train rows, then the test rows without their header
    mkdir -p "$tmp/region-$k"
    { cat "$tmp/tcga/center_${k}_train.csv"; tail -n +2 "$tmp/tcga/center_${k}_test.csv"; } \
      > "$tmp/region-$k/patients.csv"
    sites+=(--site "$tmp/region-$k")
  done
  "$ff" stats --query "$src/configs/stats-tcga.yaml" "${sites[@]}" --out "$tmp/out" --min-cell 3 --per-site
  STATS_MIN_CELL=3 $oracle tcga "$tmp/out" "$tmp"/region-{0,1,2,3,4,5}
  ;;
refuse)
  "$ff" synth --sites 3 --patients 200 --seed 9 --out "$tmp/data" >/dev/null 2>&1
  # every site allows age only: the demo query (sex, labels, insurance) is refused by all,
  # with the column named; nothing is released
  if "$ff" stats --query "$src/configs/stats-demo.yaml" --site "$tmp/data/site-1" \
       --site "$tmp/data/site-2" --site "$tmp/data/site-3" --out "$tmp/out" --allow age \
       > "$tmp/log" 2>&1; then
    echo "FAIL: a query the sites' policies do not allow ran"; cat "$tmp/log"; exit 1
  fi
  $py - "$tmp/out/stats.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
refs = d["refusals"]
assert len(refs) == 3, refs
for r in refs:
    assert "statistics.variables does not allow 'label_admission'" in r["reason"], r
assert not [r for r in d["results"]], d["results"]
print("refuse: %d sites refused at the coordinator: %s" % (len(refs), refs[0]["reason"]))
PY
  grep -q "does not allow 'label_admission'" "$tmp/out/logs/coordinator.log"
  ;;
differencing)
  # three small sites; site a has exactly one patient aged 60
  mkdir -p "$tmp/a" "$tmp/b" "$tmp/c"
  $py - "$tmp" <<'PY'
import sys
t = sys.argv[1]
for site, ages in (("a", [40 + i % 20 for i in range(40)] + [60]),
                   ("b", [41 + i % 19 for i in range(30)] + [60] * 6),
                   ("c", [42 + i % 18 for i in range(30)])):
    with open("%s/%s/patients.csv" % (t, site), "w") as f:
        f.write("patient_id,age,sex\n")
        for i, a in enumerate(ages):
            f.write("%s-%d,%d,%s\n" % (site, i, a, "FM"[i % 2]))
PY
  printf 'name: first\nwhere: [{column: age, min: 40, max: 60}]\nvariables: [{name: age}]\n' > "$tmp/q1.yaml"
  printf 'name: second\nwhere: [{column: age, min: 40, max: 59}]\nvariables: [{name: age}]\n' > "$tmp/q2.yaml"
  args=(--site "$tmp/a" --site "$tmp/b" --site "$tmp/c" --min-cell 5 --history "$tmp/history")
  "$ff" stats --query "$tmp/q1.yaml" "${args[@]}" --out "$tmp/out1"
  "$ff" stats --query "$tmp/q2.yaml" "${args[@]}" --out "$tmp/out2" || true
  $py - "$tmp/out1/stats.json" "$tmp/out2/stats.json" <<'PY'
import json, sys
first, second = (json.load(open(p)) for p in sys.argv[1:])
assert not first["refusals"], first["refusals"]
refs = second["refusals"]
assert [r["site"] for r in refs] == ["a"], refs
assert "differencing" in refs[0]["reason"] and "1 patient" in refs[0]["reason"], refs
assert "a" not in second["sites"], second["sites"]
print("differencing: the second query was refused by site a: %s" % refs[0]["reason"])
PY
  ;;
dp)
  "$ff" synth --sites 3 --patients 300 --seed 5 --out "$tmp/data" >/dev/null 2>&1
  FEDFUSE_TEST_NOISE_SEED=20261208 "$ff" stats --query "$src/tests/stats/data/query-dp.yaml" \
    --site "$tmp/data/site-1" --site "$tmp/data/site-2" --site "$tmp/data/site-3" \
    --out "$tmp/out" --min-cell 5 --per-site --max-query-epsilon 1.5
  $py "$src/tests/stats/stats_dp_oracle.py" "$src/tests/stats/data/query-dp.yaml" "$tmp/out" \
    "$tmp/data/site-1" "$tmp/data/site-2" "$tmp/data/site-3"
  "$ff" audit verify --log "$tmp/out/audit.jsonl" --ca "$tmp/out/pki/ca.pem"
  grep -q "Differential privacy: every number is noised" "$tmp/out/stats.html"
  if grep -E -q "NaN|undefined|null" "$tmp/out/stats.html"; then
    echo "FAIL: stats.html shows NaN, undefined or null"; exit 1
  fi
  ;;
dp_required)
  "$ff" synth --sites 3 --patients 200 --seed 9 --out "$tmp/data" >/dev/null 2>&1
  sites=(--site "$tmp/data/site-1" --site "$tmp/data/site-2" --site "$tmp/data/site-3")
  if "$ff" stats --query "$src/configs/stats-demo.yaml" "${sites[@]}" --out "$tmp/plain" \
       --min-cell 5 --dp-required > "$tmp/log" 2>&1; then
    echo "FAIL: sites with dp.required ran a query without noise"; cat "$tmp/log"; exit 1
  fi
  "$ff" stats --query "$src/tests/stats/data/query-dp.yaml" "${sites[@]}" --out "$tmp/noised" \
    --min-cell 5 --dp-required
  $py - "$tmp/plain/stats.json" "$tmp/noised/stats.json" <<'PY'
import json, sys
plain, noised = (json.load(open(p)) for p in sys.argv[1:])
refs = plain["refusals"]
assert len(refs) == 3 and not plain["results"], refs
for r in refs:
    assert "adds no noise" in r["reason"] and "differential privacy is required" in r["reason"], r
assert not noised["refusals"] and noised["privacy"]["enabled"], noised["refusals"]
assert sorted(noised["sites"]) == ["site-1", "site-2", "site-3"], noised["sites"]
n = [r for r in noised["results"] if r["variable"] == "patients" and r["site"] == "pooled"]
assert n and n[0]["epsilon"] == noised["epsilon"] > 0, n
print("dp_required: the noiseless query refused (%s); the noised one released at epsilon %.4f"
      % (refs[0]["reason"], noised["epsilon"]))
PY
  grep -q "adds no noise" "$tmp/plain/logs/coordinator.log"
  ;;
dp_budget)
  "$ff" synth --sites 3 --patients 200 --seed 9 --out "$tmp/data" >/dev/null 2>&1
  args=(--site "$tmp/data/site-1" --site "$tmp/data/site-2" --site "$tmp/data/site-3"
        --min-cell 5 --history "$tmp/history" --max-epsilon 1.2)
  "$ff" stats --query "$src/tests/stats/data/query-dp.yaml" "${args[@]}" --out "$tmp/out1"
  sed 's/^name: demo-dp/name: demo-dp-again/' "$src/tests/stats/data/query-dp.yaml" > "$tmp/q2.yaml"
  cp "$tmp/history/privacy-ledger-site-1.json" "$tmp/ledger-before.json"
  if "$ff" stats --query "$tmp/q2.yaml" "${args[@]}" --out "$tmp/out2" > "$tmp/log" 2>&1; then
    echo "FAIL: a query past the sites' budget ran"; cat "$tmp/log"; exit 1
  fi
  cmp "$tmp/ledger-before.json" "$tmp/history/privacy-ledger-site-1.json"
  $py - "$tmp/out1/stats.json" "$tmp/out2/stats.json" "$tmp/history/privacy-ledger-site-1.json" <<'PY'
import json, sys
first, second, ledger = (json.load(open(p)) for p in sys.argv[1:])
assert not first["refusals"] and first["epsilon"] > 0.99, first["refusals"]
assert abs(ledger["epsilon"] - first["epsilon"]) < 1e-9 and len(ledger["rounds"]) == 1, ledger
refs = second["refusals"]
assert len(refs) == 3 and not second["results"], refs
for r in refs:
    assert "privacy budget" in r["reason"] and "past dp.max_epsilon 1.2" in r["reason"], r
print("dp_budget: first query charged epsilon %.4f; the second refused: %s"
      % (ledger["epsilon"], refs[0]["reason"]))
PY
  grep -q "privacy budget" "$tmp/out2/logs/coordinator.log"
  ;;
*)
  echo "unknown mode $mode"; exit 2 ;;
esac
echo "ok $mode"
