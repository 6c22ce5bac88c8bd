#!/bin/sh
# The client-level (hospital-level) rows of the privacy/utility table in docs/privacy.md:
# `fedfuse simulate` with configs/demo.yaml (the default synthetic cohort: 4 sites, 8 rounds
# of 40 local steps, fusion-tiny), privacy.client on with clip S and the noise multiplier
# sigma for epsilon 1, 3, 8 at delta 1e-5 over the 8 rounds (q = 1), then larger epsilon to
# show where utility returns; one distributed-discrete-Gaussian run under secure aggregation.
# Pooled test AUROC per task from the coordinator's federated evaluation (metrics.json).
# Usage: bench/dp_client_table.sh FEDFUSE OUTDIR [CLIP]
set -eu
FF=$1 OUT=$2 CLIP=${3:-1.0}
SRC=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
base() { # name secagg privacy-yaml
    sed -e "s#dir: demo-data#dir: $OUT/data#" -e "s#configs/model-tiny.yaml#$SRC/configs/model-tiny.yaml#" \
        -e 's/baselines: true/baselines: false/' -e "s/^  enabled: false  /  enabled: $2  /" \
        "$SRC/configs/demo.yaml" > "$OUT/$1.yaml"
    printf '%s\n' "$3" >> "$OUT/$1.yaml"
}
row() { # name label
    rm -rf "$OUT/$1"
    "$FF" simulate --config "$OUT/$1.yaml" --out "$OUT/$1" > "$OUT/$1.txt" 2>&1 || { tail "$OUT/$1.txt"; exit 1; }
    EPS=$(grep -o "epsilon [0-9.]* of budget" "$OUT/$1/logs/coordinator.log" | tail -1 | cut -d' ' -f2)
    /usr/bin/python3 -c "import json,sys; a=json.load(open(sys.argv[1]))['auroc']; print('%-34s eps %-8s admission %.3f icu %.3f critical %.3f' % (sys.argv[2], sys.argv[3] or '-', a['admission'], a['icu'], a['critical']))" \
        "$OUT/$1/metrics.json" "$2" "${EPS:-}"
}
base off false ""
row off "no DP (federated)"
for S in 11.4420777112 4.22342563793 1.80360364914 0.5 0.1 0.02; do
    base "g$S" false "privacy: {client: {enabled: true, noise_multiplier: $S, clip_norm: $CLIP, delta: 1e-5, epsilon_budget: 1e6}}"
    row "g$S" "gaussian sigma $S S $CLIP"
done
S=1.80360364914
base "ddg$S" true "privacy: {client: {enabled: true, noise_multiplier: $S, clip_norm: $CLIP, delta: 1e-5, epsilon_budget: 1e6, mechanism: distributed_discrete_gaussian}}"
row "ddg$S" "ddg+secagg sigma $S S $CLIP"
