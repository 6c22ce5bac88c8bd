#!/usr/bin/env bash
# `fedfuse train --plan`: stages run in order with checkpoints; a run stopped after stage 1
# and resumed gives the same weights, bit for bit, as one uninterrupted run (each stage's
# rounds are seeded by seed, stage and round; the optimiser starts fresh each round); a
# resume under another plan is refused; the partial-init report is printed.
# Usage: plan_resume.sh FEDFUSE SOURCE_DIR
set -euo pipefail
fedfuse=$1; src=$2
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$fedfuse" synth --out "$work/cohort" --sites 2 --patients 150 --seed 5 --image-size 32 --no-image-site 0 --quiet 2>/dev/null
data=(--data "$work/cohort/site-1" --data "$work/cohort/site-2")
cat > "$work/plan.yaml" <<'YAML'
local_steps: 4
batch_size: 8
stages:
  - {name: clip, objective: contrastive, trainable: [img., txt., proj., logit_scale], modalities: [img, txt], rounds: 2}
  - {name: ehr, objective: multitask, modalities: [img, txt, ehr], rounds: 1}
  - {name: tune, objective: supervised, rounds: 2}
YAML
cfg="$src/configs/model-tiny-clip.yaml"
run() { "$fedfuse" train --config "$cfg" "${data[@]}" --plan "$work/plan.yaml" --label-fraction 0.25 "$@" 2>/dev/null; }
run --out "$work/full" > "$work/full.txt"
grep -q '^stage 1 clip: contrastive, 2 rounds, 8 steps' "$work/full.txt" || { echo "no stage 1 line"; cat "$work/full.txt"; exit 1; }
grep -q '^retrieval_top5_clip ' "$work/full.txt" || { echo "no retrieval after stage 1"; exit 1; }
grep -q '^stage 3 tune: supervised' "$work/full.txt" || { echo "no stage 3 line"; exit 1; }
run --out "$work/split" --stages 1 > "$work/a.txt"
grep -q '^stage 2' "$work/a.txt" && { echo "--stages 1 ran stage 2"; exit 1; }
cmp "$work/full/stage-1.safetensors" "$work/split/stage-1.safetensors"
run --out "$work/split" --resume > "$work/b.txt"
grep -q '^resumed after stage 1' "$work/b.txt" || { echo "not resumed"; cat "$work/b.txt"; exit 1; }
grep -q '^stage 1' "$work/b.txt" && { echo "stage 1 ran again"; exit 1; }
for f in stage-2 stage-3 model; do
  cmp "$work/full/$f.safetensors" "$work/split/$f.safetensors" || { echo "$f differs after resume"; exit 1; }
done
grep -q '"stages_done": 3' "$work/split/plan-state.json"
# another plan: refused, exit 2
sed 's/rounds: 2}/rounds: 3}/' "$work/plan.yaml" > "$work/plan2.yaml"
set +e
"$fedfuse" train --config "$cfg" "${data[@]}" --plan "$work/plan2.yaml" --resume --out "$work/split" > "$work/c.txt" 2>&1
rc=$?
set -e
[ $rc -eq 2 ] && grep -q "was written for another plan" "$work/c.txt" || { echo "resume under another plan: rc $rc"; cat "$work/c.txt"; exit 1; }
# encoders of the pre-trained model into a fresh model: loaded / kept / ignored printed
"$fedfuse" train --config "$src/configs/model-tiny.yaml" "${data[@]}" --steps 2 --batch 4 \
    --init-partial "$work/full/stage-1.safetensors" --out "$work/init" 2>/dev/null > "$work/d.txt"
grep -q "^init from .*: loaded 100 tensors" "$work/d.txt" || { echo "init report"; cat "$work/d.txt"; exit 1; }
grep -q "ignored: proj.img.weight (not in the model)" "$work/d.txt" || { echo "ignored not listed"; cat "$work/d.txt"; exit 1; }
echo "plan resume: ok"
