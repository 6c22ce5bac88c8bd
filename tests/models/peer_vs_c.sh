#!/bin/sh
# peer_vs_c.sh FEDFUSE SIZE WORKDIR [TOL]: runs `FEDFUSE model grad` on golden inputs and
# weights for SIZE (tiny: the committed tests/models/golden files; base: fusion-base files
# generated now by the PyTorch peer into WORKDIR) in the cross, early and late modes, and
# compares logits, loss and every grad.<name> with bench/torch_peer.py compare: per tensor
# max|C - torch| / max|torch| <= TOL (default 1e-4). Exit 77 (skip) without torch or without
# the `model grad` command, 1 on a mismatch.
set -eu
fedfuse=$1; size=$2; work=$3; tol=${4:-1e-4}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
py=${FF_PYTHON:-/usr/bin/python3}
peer="$root/bench/torch_peer.py"
if ! "$py" -c 'import torch, numpy, yaml' 2>/dev/null; then
  echo "SKIP: $py has no torch/numpy/yaml"; exit 77
fi
if ! "$fedfuse" model grad --help >/dev/null 2>&1; then
  echo "SKIP: $fedfuse has no 'model grad' command yet"; exit 77
fi
mkdir -p "$work"
case "$size" in
  tiny) gold=$here/golden; cfg=$root/configs/model-tiny.yaml ;;
  base) gold=$work; cfg=$root/configs/model-base.yaml
        "$here/gen_golden.sh" base "$work" 8 ;;
  *) echo "usage: peer_vs_c.sh FEDFUSE tiny|base WORKDIR [TOL]" >&2; exit 2 ;;
esac
rc=0
for mode in cross early late; do
  sed "s/^fusion: .*/fusion: $mode/" "$cfg" > "$work/${size}_$mode.yaml"
  "$fedfuse" model grad --config "$work/${size}_$mode.yaml" \
    --weights "$gold/${size}_${mode}_weights.safetensors" \
    --inputs "$gold/${size}_${mode}_inputs.safetensors" --out "$work/${size}_${mode}_c.safetensors"
  echo "${size}_$mode:"
  "$py" "$peer" compare --expected "$gold/${size}_${mode}_expected.safetensors" \
    --actual "$work/${size}_${mode}_c.safetensors" --tol "$tol" || rc=1
done
exit $rc
