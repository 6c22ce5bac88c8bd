#!/bin/bash
# A federated run on sites made from the shared FHIR sample (issue 28, label integration): the
# export's patients are divided between two hospitals (each keeps the whole export's other
# files; resources of the other hospital's patients are skipped and counted), each imported with
# `fedfuse import fhir`, checked with `data check --strict`, then `fedfuse simulate --site A
# --site B` runs 2 rounds over mutual TLS and must exit 0 with metrics.json and the audit log
# verifying.
set -u
fedfuse=$1 src=$2 sample=$3 tmp=$4
fail() { echo "FAIL: $*"; exit 1; }
rm -rf "$tmp" && mkdir -p "$tmp" || fail "mkdir $tmp"
for h in a b; do
    mkdir -p "$tmp/export-$h" && cp "$sample"/*.ndjson "$tmp/export-$h/" || fail "copy"
done
# patients alternate between the hospitals (in file order)
awk 'NR % 2 == 1' "$sample/Patient.000.ndjson" > "$tmp/export-a/Patient.000.ndjson"
awk 'NR % 2 == 0' "$sample/Patient.000.ndjson" > "$tmp/export-b/Patient.000.ndjson"
for h in a b; do
    "$fedfuse" import fhir --in "$tmp/export-$h" --out "$tmp/hospital-$h" > "$tmp/import-$h.txt" ||
        fail "import fhir hospital-$h: $(cat "$tmp/import-$h.txt")"
    grep -q "no or unknown subject patient" "$tmp/import-$h.txt" ||
        fail "hospital-$h: the other hospital's resources were not counted as skipped"
    "$fedfuse" data check "$tmp/hospital-$h" --strict --config "$src/configs/model-tiny.yaml" \
        > "$tmp/check-$h.txt" 2>&1 || fail "data check --strict hospital-$h: $(cat "$tmp/check-$h.txt")"
done
cat > "$tmp/fhir.yaml" <<EOC
run_name: fhir
model_config: $src/configs/model-tiny.yaml
rounds: 2
seed: 3
plan: {local_steps: 4, batch_size: 8, lr: 0.002}
min_sites: 2
deadlines: {train: 120, evaluate: 120}
secure_aggregation: {enabled: true}
baselines: false
timeout: 600
EOC
"$fedfuse" simulate --config "$tmp/fhir.yaml" --site "$tmp/hospital-a" --site "$tmp/hospital-b" \
    --out "$tmp/out" > "$tmp/simulate.txt" 2>&1 || { tail -20 "$tmp/simulate.txt"; fail "simulate"; }
[ -s "$tmp/out/metrics.json" ] || fail "no metrics.json"
"$fedfuse" audit verify --log "$tmp/out/audit.jsonl" --ca "$tmp/out/pki/ca.pem" > "$tmp/verify.txt" 2>&1 ||
    fail "audit verify: $(tail -3 "$tmp/verify.txt")"
grep -h "^fhir:" "$tmp"/import-*.txt
echo "ok: simulate on hospital-a and hospital-b imported from FHIR completed, audit log verifies"
