#!/usr/bin/env bash
# The data issue's "done when": the tiny fusion model trained on the default synthetic cohort
# beats each single-modality model on the pooled test split (mean AUROC over the tasks), and
# stays below the oracle. Usage: signal_model.sh FEDFUSE SOURCE_DIR
set -euo pipefail
fedfuse=$1; src=$2
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$fedfuse" synth --out "$work/cohort" --seed 2024 --image-size 32 --quiet 2>/dev/null
data=(); for s in "$work"/cohort/site-*; do data+=(--data "$s"); done
mean() { "$fedfuse" train --config "$src/configs/model-tiny.yaml" "${data[@]}" --steps "${STEPS:-900}" \
           --modalities "$1" --out "$work/$1" 2>/dev/null | awk '/^auroc_/{s+=$2;n++} END{printf "%.4f", s/n}'; }
all=$(mean all); img=$(mean img); txt=$(mean txt); ehr=$(mean ehr)
oracle=$(/usr/bin/python3 - "$work/cohort" <<'PY'
import csv, sys, glob
from sklearn.metrics import roc_auc_score
ys, ps = {t: [] for t in range(3)}, {t: [] for t in range(3)}
for site in sorted(glob.glob(sys.argv[1] + "/site-*")):
    split = {r["patient_id"]: r for r in csv.DictReader(open(site + "/patients.csv"))}
    for r in csv.DictReader(open(site + "/oracle.csv")):
        p = split.get(r["patient_id"])
        if not p or p["split"] != "test": continue
        for t, (lab, risk) in enumerate([("label_admission", "risk_admission"), ("label_icu", "risk_icu"), ("label_critical", "risk_critical")]):
            ys[t].append(int(p[lab])); ps[t].append(float(r[risk]))
print("%.4f" % (sum(roc_auc_score(ys[t], ps[t]) for t in range(3)) / 3))
PY
)
echo "mean test AUROC: fusion $all, image $img, text $txt, ehr $ehr, oracle $oracle"
awk -v a="$all" -v i="$img" -v t="$txt" -v e="$ehr" -v o="$oracle" 'BEGIN {
  ok = a > i + 0.02 && a > t + 0.02 && a > e + 0.02 && a < o + 0.01;
  print ok ? "signal split: ok" : "signal split: FAILED"; exit !ok }'
