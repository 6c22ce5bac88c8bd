#!/usr/bin/env bash
# docs/training.md's table: supervised-only training vs the three-stage plan
# (configs/plan-pretrain.yaml: contrastive image-text, + EHR, fine-tune) with 10%, 25% and
# 100% of the labels at each site, federated (fedfuse simulate: 4 hospitals, FedAvg, mutual
# TLS on loopback), model configs/model-tiny-clip.yaml. Both arms run the same number of
# rounds x local steps; supervised-only is one supervised stage of all the plan's rounds.
# Each final model is scored by `fedfuse eval` on the pooled test split (AUROC with 1000
# bootstrap 95% CIs); image->text retrieval is measured on a federated run of stage 1 alone.
#
# Usage: bench/pretrain_table.sh [FEDFUSE] [OUT]
#   env: SEEDS="1 2 3" (training seeds), FRACTIONS="0.1 0.25 1", BOOT=1000, MODE=federated
#        (or pooled: `fedfuse train --plan` on the pooled sites, no network), TABLE_ONLY=1
#        (only rebuild the tables from the runs already in OUT)
# Prints the markdown table and writes OUT/table.md and OUT/results.json.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
fedfuse=$(realpath "${1:-$src/build/fedfuse}")
out=$(realpath -m "${2:-$src/build/pretrain-table}")
SEEDS=${SEEDS:-"1 2 3"}; FRACTIONS=${FRACTIONS:-"0.1 0.25 1"}; BOOT=${BOOT:-1000}; MODE=${MODE:-federated}
mc=$src/configs/model-tiny-clip.yaml
plan=$src/configs/plan-pretrain.yaml
mkdir -p "$out"
export OPENBLAS_NUM_THREADS=1
cohort=$out/cohort
[ -d "$cohort/site-4" ] || "$fedfuse" synth --out "$cohort" --sites 4 --patients 1000 --seed 2024 \
    --image-size 32 --quiet 2>/dev/null
data=(); for s in "$cohort"/site-*; do data+=(--data "$s"); done
rounds=$(awk '/^ *rounds:/{s+=$2} END{print s}' "$plan")
# supervised-only: the plan's optimiser section and budget, one supervised stage
{ sed '/^stages:/,$d' "$plan"; printf 'stages:\n  - name: supervised\n    objective: supervised\n    rounds: %d\n' "$rounds"; } > "$out/plan-supervised.yaml"
# stage 1 alone (for retrieval after stage 1)
{ sed '/^stages:/,$d' "$plan"; echo 'stages:'; sed -n '/^  - name: clip/,/^  # (2)/p' "$plan" | sed '$d'; } > "$out/plan-stage1.yaml"

train() { # plan fraction seed dir
    if [ "$MODE" = pooled ]; then
        "$fedfuse" train --config "$mc" "${data[@]}" --plan "$1" --label-fraction "$2" --seed "$3" \
            --out "$4" > "$4.log" 2>&1
    else
        local r; r=$(awk '/^ *rounds:/{s+=$2} END{print s}' "$1")
        cat > "$4.yaml" <<EOC
run_name: pretrain
data: {dir: $cohort, sites: 4, patients: 1000, seed: 2024}
model_config: $mc
rounds: $r
seed: $3
min_sites: 4
deadlines: {train: 300, evaluate: 120}
baselines: false
timeout: 1800
plan_file: $1
label_fraction: $2
EOC
        rm -rf "$4"; "$fedfuse" simulate --config "$4.yaml" --out "$4" > "$4.log" 2>&1 ||
            { echo "simulate failed: $4.log" >&2; tail -3 "$4.log" >&2; exit 1; }
    fi
}
score() { # dir [--retrieval]
    "$fedfuse" eval --config "$mc" --weights "$1/model.safetensors" "${data[@]}" --bootstrap "$BOOT" \
        --seed 1 ${2:-} --out "$1/eval" 2>/dev/null > "$1/eval.txt"
}
t0=$(date +%s)
[ -n "${TABLE_ONLY:-}" ] && SEEDS_RUN="" || SEEDS_RUN=$SEEDS
for seed in $SEEDS_RUN; do
    d=$out/stage1-s$seed; train "$out/plan-stage1.yaml" 1 "$seed" "$d"; score "$d" --retrieval
    for f in $FRACTIONS; do
        for arm in supervised plan; do
            p=$out/plan-supervised.yaml; [ $arm = plan ] && p=$plan
            d=$out/$arm-f$f-s$seed; train "$p" "$f" "$seed" "$d"; score "$d"
            echo "$arm labels $f seed $seed: $(grep ^auroc_ "$d/eval.txt" | tr '\n' ' ')" >&2
        done
    done
done
[ -n "${TABLE_ONLY:-}" ] || echo "$MODE runs finished in $(( $(date +%s) - t0 )) s" >&2
/usr/bin/python3 - "$out" "$MODE" "$SEEDS" "$FRACTIONS" "$BOOT" <<'PY'
import json, sys, statistics as st
out, mode, seeds, fracs, boot = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split(), sys.argv[5]
tasks = ["admission", "icu", "critical"]
arms = [("supervised", "supervised only"), ("plan", "3-stage plan")]
res = {"mode": mode, "seeds": seeds, "bootstrap": int(boot), "runs": {}, "retrieval": {}}
def load(arm, f, s):
    j = json.load(open(f"{out}/{arm}-f{f}-s{s}/eval/metrics.json"))
    return {t: (j["tasks"][t]["pooled"]["auroc"], j["tasks"][t]["pooled"].get("ci95", {}).get("auroc")) for t in tasks}
R = {(a, f, s): load(a, f, s) for a, _ in arms for f in fracs for s in seeds}
for (a, f, s), v in R.items():
    res["runs"][f"{a}-{f}-s{s}"] = {t: {"auroc": v[t][0], "ci95": v[t][1]} for t in tasks}
sd = lambda xs: f" ± {st.stdev(xs):.3f}" if len(xs) > 1 else ""
L = [f"Mean test AUROC over training seeds {', '.join(seeds)} (± SD over seeds); last column: "
     "plan minus supervised-only in the mean over tasks, per seed.", "",
     "| labels | arm | " + " | ".join(tasks) + " | mean over tasks | plan − supervised |",
     "|---|---|" + "---|" * (len(tasks) + 2)]
for f in fracs:
    for a, name in arms:
        cells = [f"{st.mean(R[a, f, s][t][0] for s in seeds):.3f}{sd([R[a, f, s][t][0] for s in seeds])}" for t in tasks]
        mean = st.mean(R[a, f, s][t][0] for s in seeds for t in tasks)
        diff = ""
        if a == "plan":
            d = [st.mean(R["plan", f, s][t][0] for t in tasks) - st.mean(R["supervised", f, s][t][0] for t in tasks) for s in seeds]
            diff = f"{st.mean(d):+.3f} ({', '.join(f'{x:+.3f}' for x in d)})"
        L.append(f"| {float(f)*100:g}% | {name} | " + " | ".join(cells) + f" | {mean:.3f} | {diff} |")
s1 = seeds[0]
L += ["", f"Training seed {s1} alone, with 95% bootstrap CIs ({boot} resamples of the pooled test patients):", "",
      "| labels | arm | " + " | ".join(tasks) + " |", "|---|---|" + "---|" * len(tasks)]
for f in fracs:
    for a, name in arms:
        cells = []
        for t in tasks:
            v, ci = R[a, f, s1][t]
            cells.append(f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{v:.3f}")
        L.append(f"| {float(f)*100:g}% | {name} | " + " | ".join(cells) + " |")
r1, r5, ch, n = [], [], [], 0
for s in seeds:
    for l in open(f"{out}/stage1-s{s}/eval.txt").read().split("\n"):
        if l.startswith("retrieval_top1 "): r1.append(float(l.split()[1]))
        if l.startswith("retrieval_top5 "): r5.append(float(l.split()[1]))
        if l.startswith("retrieval image->text on "):
            n = int(l.split()[3]); ch.append(float(l.split()[-1]))
res["retrieval"] = {"top1": r1, "top5": r5, "chance_top1": ch[0] if ch else None, "pairs": n}
L += ["", f"Image→text retrieval after stage 1 ({n} held-out test pairs; candidates = the same "
      f"site's test patients): top-1 {st.mean(r1):.3f}, top-5 {st.mean(r5):.3f} (per seed: top-1 "
      f"{', '.join(f'{x:.3f}' for x in r1)}; top-5 {', '.join(f'{x:.3f}' for x in r5)}); "
      f"a random ranking: top-1 {ch[0]:.4f}, top-5 about {min(1, 5*ch[0]):.4f}."]
open(f"{out}/table.md", "w").write("\n".join(L) + "\n")
json.dump(res, open(f"{out}/results.json", "w"), indent=1)
print("\n".join(L))
PY
