#!/bin/sh
# cli_grad.sh FEDFUSE WORKDIR: `model init` then `model grad` on the tiny config; the output
# must hold logits, loss and grad.<name> for every parameter with the parameter's shape.
set -eu
ff=$1; work=$2
mkdir -p "$work"
"$ff" model init --config configs/model-tiny.yaml --seed 5 --out "$work/w.safetensors" >/dev/null
"$ff" model grad --config configs/model-tiny.yaml --weights "$work/w.safetensors" \
  --inputs tests/models/data/tiny_good.safetensors --out "$work/g.safetensors" >/dev/null
"$ff" inspect "$work/g.safetensors" > "$work/inspect.txt"
"$ff" model info --config configs/model-tiny.yaml > "$work/info.txt"
n=$(grep -c '^grad\.' "$work/inspect.txt")
want=$(grep -c '^[a-z]' "$work/info.txt"); want=$((want - 2)) # minus the header and total lines
[ "$n" -eq "$want" ] || { echo "grad tensors: $n, parameters: $want"; exit 1; }
grep -q '^logits  *F32  *\[2,3\]' "$work/inspect.txt" || { echo "no logits [2,3]"; exit 1; }
grep -q '^loss  *F32  *\[1\]' "$work/inspect.txt" || { echo "no loss [1]"; exit 1; }
# every parameter's shape is the grad's shape (fields compared as strings, no regex)
grep -v -e '^model ' -e '^total ' "$work/info.txt" > "$work/p.txt"
awk 'NR == FNR { if ($1 ~ /^grad\./) g[substr($1, 6)] = $3; next }
     !($1 in g) || g[$1] != $2 { print "grad." $1 " " $2 " missing or misshaped"; bad = 1 }
     END { exit bad }' "$work/inspect.txt" "$work/p.txt"
echo ok
