#!/usr/bin/env bash
# The logging rule, tested end to end: plant patient strings that exist nowhere else (a
# patient id, a note word, an event code, an attribute value, and malformed rows whose
# contents would be tempting to echo) into a synthetic site, run every command that reads
# patient data, and fail if any of them shows up in anything printed or logged.
# Usage: log_privacy.sh FEDFUSE SOURCE_DIR
set -euo pipefail
fedfuse=$1; src=$2
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$fedfuse" synth --sites 2 --patients 150 --seed 5 --image-size 32 --no-image-site 0 --out "$work/c" --quiet 2>/dev/null
site=$work/c/site-1
canaries=(CANARYPID4417 canarynoteword CANARYCODE9 CANARYATTR
          CANARYBADROW CANARYUNKNOWNPID)
# a good patient with planted id, note word and event code
echo "CANARYPID4417,50,F,train,1,0,0" >> "$site/patients.csv"
printf 'CANARYPID4417,"patient reports canarynoteword pain"\n' >> "$site/notes.csv"
echo "CANARYPID4417,1.5,CANARYCODE9,3.2" >> "$site/events.csv"
# malformed rows (lenient mode skips and counts them) and an unknown patient
echo "CANARYBADROW,notanage,F,train,1,0" >> "$site/patients.csv"
echo "CANARYUNKNOWNPID,2.0,LAB:X,1" >> "$site/events.csv"
printf 'CANARYUNKNOWNPID,"canarynoteword again"\n' >> "$site/notes.csv"

out=$work/out.txt
{
  "$fedfuse" data check "$site" --config "$src/configs/model-tiny.yaml" || true
  "$fedfuse" train --config "$src/configs/model-tiny.yaml" --data "$site" --data "$work/c/site-2" \
      --steps 20 --out "$work/t" || true
  "$fedfuse" eval --config "$src/configs/model-tiny.yaml" --weights "$work/t/model.safetensors" \
      --data "$site" --out "$work/e" || true
  "$fedfuse" data check "$site" --strict --config "$src/configs/model-tiny.yaml" || true
} > "$out" 2>&1
bad=0
for c in "${canaries[@]}"; do
  if grep -rq "$c" "$out" "$work/t/metrics.json" "$work/t/report.html" "$work/e" 2>/dev/null; then
    echo "patient data leaked into output or logs: '$c'"; grep -rn "$c" "$out" | head -3; bad=1
  fi
done
grep -q "skipped" "$out" || { echo "expected the skip summary (counts) in the output"; bad=1; }
[[ $bad -eq 0 ]] && echo "log privacy: no planted patient string in $(wc -l < "$out") lines of output"
exit $bad
