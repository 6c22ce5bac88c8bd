#!/bin/sh
# The record-level privacy/utility table of docs/privacy.md: centralised pooled training of
# fusion-tiny on the default synthetic cohort at epsilon 1, 3, 8 and inf (delta 1e-5), AUROC
# per task on the pooled test split. Usage: bench/dp_table.sh FEDFUSE OUTDIR [STEPS] [BATCH]
set -eu
FF=$1 OUT=$2 STEPS=${3:-1000} BATCH=${4:-64}
CFG=$(dirname "$0")/../configs/model-tiny.yaml
mkdir -p "$OUT"
[ -d "$OUT/cohort/site-4" ] || "$FF" synth --out "$OUT/cohort" --image-size 32 --quiet
DATA=""
for s in 1 2 3 4; do DATA="$DATA --data $OUT/cohort/site-$s"; done
# patients in the pooled train split (printed by train as 'train=N' per site)
NTRAIN=$("$FF" train --config "$CFG" $DATA --out "$OUT/probe" --steps 1 2>&1 |
         sed -n 's/.*train=\([0-9]*\).*/\1/p' | awk '{s+=$1} END {print s}')
Q=$(awk -v b="$BATCH" -v n="$NTRAIN" 'BEGIN {printf "%.12g", b / n}')
echo "patients $NTRAIN q $Q steps $STEPS batch $BATCH"
for EPS in 1 3 8 inf; do
    if [ "$EPS" = inf ]; then
        DP=""
    else
        SIGMA=$("$FF" privacy plan --epsilon "$EPS" --delta 1e-5 --q "$Q" --steps "$STEPS" |
                sed -n 's/^sigma //p')
        DP="--dp-sigma $SIGMA --dp-clip 1.0 --dp-delta 1e-5"
    fi
    echo "== epsilon $EPS ${DP}"
    "$FF" train --config "$CFG" $DATA --out "$OUT/eps-$EPS" --steps "$STEPS" --batch "$BATCH" \
        $DP 2>/dev/null | grep -E '^(epsilon|auroc_)'
done
