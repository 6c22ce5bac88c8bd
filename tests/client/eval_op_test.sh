#!/usr/bin/env bash
# `fedfuse eval` picks each task's operating point as the federated report does: the declared
# rule (--operating-point, default specificity:0.9) on the sites' pooled validation split,
# through 10,000-bin histograms; metrics.json and the page show that threshold and the
# sensitivity/PPV at it, checked against numpy (eval_op_oracle.py) for three rules. A site set
# without a validation split keeps 0.5 and the page says why; a bad rule is refused.
# Usage: eval_op_test.sh FEDFUSE SOURCE_DIR
set -euo pipefail
fedfuse=$1; src=$2
py=/usr/bin/python3
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export OPENBLAS_NUM_THREADS=1
cfg=$src/configs/model-tiny.yaml
"$fedfuse" synth --sites 2 --patients 300 --seed 5 --image-size 32 --out "$work/c" --quiet 2>/dev/null
sites=(--data "$work/c/site-1" --data "$work/c/site-2")
"$fedfuse" train --config "$cfg" "${sites[@]}" --steps 40 --out "$work/t" > "$work/train.txt" 2>&1 \
  || { cat "$work/train.txt"; fail "train"; }
ev() { # OUT [ARGS...]
  local out=$1; shift
  "$fedfuse" eval --config "$cfg" --weights "$work/t/model.safetensors" "${sites[@]}" \
    --bootstrap 0 --predictions --out "$work/$out" "$@" > "$work/$out.txt" 2>&1 \
    || { cat "$work/$out.txt"; fail "eval $*"; }
}
ev val --split val
for op in specificity:0.9 sensitivity:0.8 alert_rate:0.2; do
  if [[ $op == specificity:0.9 ]]; then ev test; else ev "test-$op" --operating-point "$op"; fi
  dir=$work/test; [[ $op == specificity:0.9 ]] || dir=$work/test-$op
  echo "-- $op"
  "$py" "$src/tests/client/eval_op_oracle.py" "${op%%:*}" "${op#*:}" "$work/val/predictions.csv" \
    "$dir" "$work/c/site-1" "$work/c/site-2" || fail "operating point $op differs from numpy"
done

# no validation split at any site: 0.5, and the page says the rule could not be applied
for s in site-1 site-2; do
  mkdir -p "$work/noval"; cp -r "$work/c/$s" "$work/noval/$s"
  sed -i 's/,val,/,train,/' "$work/noval/$s/patients.csv"
done
"$fedfuse" eval --config "$cfg" --weights "$work/t/model.safetensors" --data "$work/noval/site-1" \
  --data "$work/noval/site-2" --bootstrap 0 --out "$work/nv" > "$work/nv.txt" 2>&1 \
  || { cat "$work/nv.txt"; fail "eval without a validation split"; }
grep -q "Operating point: threshold 0.5 — the rule (specificity at least 90%, fedfuse eval --operating-point) could not be applied: no validation split" \
  "$work/nv/report.html" || fail "the page does not say there is no validation split"
"$py" - "$work/nv/metrics.json" <<'PY' || fail "metrics.json of the run without a validation split"
import json, sys
op = json.load(open(sys.argv[1]))["tasks"]["admission"]["operating_point"]
assert op["threshold"] == 0.5 and op["undefined"].startswith("no validation split"), op
PY

# a rule that does not exist, or a target outside (0, 1): refused, naming the flag
for bad in nope:0.9 specificity:1.5 specificity; do
  if "$fedfuse" eval --config "$cfg" --weights "$work/t/model.safetensors" "${sites[@]}" \
       --operating-point "$bad" --out "$work/bad" > "$work/bad.txt" 2>&1; then
    fail "--operating-point $bad accepted"
  fi
  grep -q -- "--operating-point '$bad'" "$work/bad.txt" || { cat "$work/bad.txt"; fail "no reason for $bad"; }
done
echo "eval operating point: three rules equal to numpy; no validation split said; bad rules refused"
