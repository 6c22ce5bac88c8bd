#!/bin/bash
# Every page a person reads, rendered in headless Chromium (label pages; check_pages.py says
# what is checked): a small federated run (3 sites, 3 rounds, its report.html), `fedfuse eval`
# of the final model on the three sites (report.html), and the auditor's page of the run's
# log (`fedfuse audit report`), the coordinator's live view (live.html), `fedfuse explain`'s
# page for one test patient and `fedfuse stats`'s page of the demo query on the same sites. Screenshots go to SHOTS (kept; docs/img holds small copies).
# To add a page: make it below and add one `page NAME FILE` line.
set -u
fedfuse=$1 src=$2 shots=$3
mode=pages
. "$src/tests/fed/lib.sh"
fed_init pagestest 10 '*/logs/*.log' 'eval.txt' 'audit.txt' 'explain.txt' 'stats.txt'

pages=()
page() { pages+=("$1=$2"); } # page NAME FILE: one page to check

demo_secagg="enabled: false" demo_run=pages demo_patients=300 demo_baselines=false \
    demo_plan="local_steps: 10, batch_size: 16, lr: 0.002" mkdemo 3 120
simulate_a
"$fedfuse" eval --config "$src/configs/model-tiny.yaml" --weights "$tmp/a/model.safetensors" \
    --data "$tmp/data/site-1" --data "$tmp/data/site-2" --data "$tmp/data/site-3" \
    --bootstrap 100 --seed 1 --out "$tmp/ev" > "$tmp/eval.txt" 2>&1 || fail "fedfuse eval"
"$fedfuse" audit report --log "$tmp/a/audit.jsonl" --ca "$tmp/a/pki/ca.pem" \
    --receipts "$tmp/a/receipts" --certs "$tmp/a/pki/receipt-certs" --out "$tmp/audit.html" \
    > "$tmp/audit.txt" 2>&1 || fail "fedfuse audit report"

patient=$(awk -F, '$4 == "test" {print $1; exit}' "$tmp/data/site-1/patients.csv")
"$fedfuse" explain --config "$src/configs/model-tiny.yaml" --weights "$tmp/a/model.safetensors" \
    --site "$tmp/data/site-1" --patient "$patient" --out "$tmp/ex" > "$tmp/explain.txt" 2>&1 \
    || fail "fedfuse explain"

"$fedfuse" stats --query "$src/configs/stats-demo.yaml" --site "$tmp/data/site-1" \
    --site "$tmp/data/site-2" --site "$tmp/data/site-3" --per-site --out "$tmp/st" \
    > "$tmp/stats.txt" 2>&1 || fail "fedfuse stats"

page federated-report "$tmp/a/report.html"
page live-view "$tmp/a/live.html"
page eval-report "$tmp/ev/report.html"
page audit-report "$tmp/audit.html"
page explain "$tmp/ex/explain.html"
page statistics "$tmp/st/stats.html"

$py "$src/tests/pages/check_pages.py" "$shots" "${pages[@]}" || fail "pages"
echo "ok: ${#pages[@]} pages"
