#!/bin/sh
# Regenerates golden files with the PyTorch peer (bench/torch_peer.py, float64 oracle).
#   tests/models/gen_golden.sh                 tiny cross/early/late, batch 8, seed 1, into
#                                              tests/models/golden (the committed set)
#   tests/models/gen_golden.sh base DIR [B]    fusion-base cross/early/late into DIR (not
#                                              committed: ~25 MB per mode), batch B (default 8)
# Needs /usr/bin/python3 with python3-torch, python3-numpy, python3-yaml.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
py=${FF_PYTHON:-/usr/bin/python3}
which=${1:-tiny}
case "$which" in
  tiny) out=${2:-$here/golden}; cfg=$root/configs/model-tiny.yaml ;;
  base) out=${2:?usage: gen_golden.sh base DIR [BATCH]}; cfg=$root/configs/model-base.yaml ;;
  *) echo "usage: gen_golden.sh [tiny [DIR] | base DIR [BATCH]]" >&2; exit 2 ;;
esac
batch=${3:-8}
for fusion in cross early late; do
  "$py" "$root/bench/torch_peer.py" golden --config "$cfg" --out "$out" --seed 1 \
    --batch "$batch" --fusion "$fusion"
done
