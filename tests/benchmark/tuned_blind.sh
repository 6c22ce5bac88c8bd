#!/usr/bin/env bash
# `--tuned` chooses its hyperparameters on a validation split of the training rows only: the
# same search on a copy of the data whose test labels are poisoned (heart disease: labels
# flipped; TCGA-BRCA: events flipped, times reversed) must choose the same values and write
# the same tuned.json, while the test results themselves change (the poison took effect).
# Usage: tuned_blind.sh FEDFUSE FLAMBY_DIR WORK
set -euo pipefail
fedfuse=$1 flamby=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
export FEDFUSE_LOG_LEVEL=warn
poison() { # DIR: every *test.csv's targets replaced
    /usr/bin/python3 - "$1" <<'PY'
import csv, glob, sys
for f in glob.glob(sys.argv[1] + "/*test.csv"):
    rows = list(csv.reader(open(f)))
    head, body = rows[0], rows[1:]
    if head[-1] == "label":
        for r in body:
            r[-1] = "0" if float(r[-1]) > 0.5 else "1"
    else:
        times = [r[-1] for r in body][::-1]
        for r, t in zip(body, times):
            r[-2], r[-1] = ("0" if float(r[-2]) > 0.5 else "1"), t
    csv.writer(open(f, "w", newline=""), lineterminator="\n").writerows([head] + body)
PY
}
for ds in heart-disease tcga-brca; do
    d=heart; [ "$ds" = tcga-brca ] && d=tcga
    "$fedfuse" import flamby --dataset "$ds" --in "$flamby/$ds" --out "$work/$d" >/dev/null
    cp -r "$work/$d" "$work/$d-poisoned"
    poison "$work/$d-poisoned"
    for v in "$d" "$d-poisoned"; do
        "$fedfuse" benchmark flamby --dataset "$ds" --data "$work/$v" --out "$work/out-$v" \
            --seeds 42 --methods fedavg,fedprox,fedadam,fedavg-ft --tuned 2>"$work/progress-$v.txt"
        grep -q "^tuned FedAvg100: lr [0-9.e-]* (validation loss" "$work/progress-$v.txt"
        grep -q "^tuned FedAdam100: lr [0-9.e-]*, server_lr " "$work/progress-$v.txt"
        grep -q '"chosen": {"lr": ' "$work/out-$v/tuned.json"
    done
    cmp "$work/out-$d/tuned.json" "$work/out-$d-poisoned/tuned.json"
    diff <(grep '^tuned' "$work/progress-$d.txt") <(grep '^tuned' "$work/progress-$d-poisoned.txt")
    if cmp -s "$work/out-$d/results.csv" "$work/out-$d-poisoned/results.csv"; then
        echo "the poisoned test labels changed no result: the test did not test" >&2
        exit 1
    fi
done
echo "tuned_blind: ok"
