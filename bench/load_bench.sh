#!/bin/bash
# load_bench: one coordinator and N client processes (fedfuse simulate: real processes, mutual
# TLS on loopback, secure aggregation on) for a few rounds, for each N given. Reports per N the
# round latency (rounds.csv), the coordinator's CPU time and peak RSS (wait4 of the coordinator
# process, printed by simulate), the errors, and fits peak RSS = a + b * N over the Ns to give
# the per-client memory constant b next to the model's size.
#
#   build/bench/load_bench [--clients "16 64 256"] [--rounds 3] [--model configs/model-tiny.yaml]
#                          [--work DIR] [--keep]
#
# Machine-readable lines (one per N, then the fit):
#   clients N round_s X round1_s X coord_cpu_s Y coord_peak_mb Z wall_s W errors E
#   fit_coord_mb_base A fit_kb_per_client B model_kb M per_client_over_model R
# Exit status 1 when any N had errors (a client failed, a round did not sum every client,
# a warning or error in the coordinator log).
set -u
fedfuse="" clients="16 64 256" rounds=3 model="" work="" keep=0
while [ $# -gt 0 ]; do
    case $1 in
    --fedfuse) fedfuse=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "load_bench: unknown argument $1" >&2; exit 2 ;;
    esac
done
src=$(cd "$(dirname "$0")/.." && pwd)
[ -n "$model" ] || model=$src/configs/model-tiny.yaml
[ -x "$fedfuse" ] || { echo "load_bench: --fedfuse PATH (the fedfuse program) is needed" >&2; exit 2; }
model=$(readlink -f "$model")
if [ -z "$work" ]; then
    work=$(mktemp -d /tmp/load_bench.XXXXXX)
    [ $keep = 1 ] || trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work"

# Many processes: each client has a few gRPC threads; the coordinator has 2 per site.
ulimit -n 65536 2>/dev/null || true
ulimit -u unlimited 2>/dev/null || true

results=()
status=0
printf "%8s %10s %10s %12s %14s %8s %7s\n" clients round_s round1_s coord_cpu_s coord_peak_mb wall_s errors
for n in $clients; do
    ncohort=$((n < 64 ? n : 64))
    out=$work/run-$n
    rm -rf "$out"
    # Tiny per-site data, one local step, generous deadlines: the load is the protocol, not
    # the training. min_sites is raised to the secure-aggregation threshold by simulate.
    cat > "$work/load-$n.yaml" <<EOC
run_name: load-$n
data: {dir: $work/data-$ncohort, sites: $n, patients: 50, seed: 3}
model_config: $model
rounds: $rounds
seed: 5
plan: {local_steps: 1, batch_size: 8, lr: 0.002}
min_sites: 2
deadlines: {train: 900, evaluate: 900}
secure_aggregation: {enabled: true}
threads: 1
baselines: false
timeout: 3600
EOC
    t0=$(date +%s.%N)
    "$fedfuse" simulate --config "$work/load-$n.yaml" --out "$out" > "$work/sim-$n.txt" 2>&1
    rc=$?
    wall=$(printf "%.1f" "$(echo "$(date +%s.%N) - $t0" | bc)")
    line=$(grep "^coordinator process:" "$work/sim-$n.txt")
    cpu=$(echo "$line" | sed -n 's/.*cpu \([0-9.]*\) s.*/\1/p')
    peak=$(echo "$line" | sed -n 's/.*peak RSS \([0-9.]*\) MB.*/\1/p')
    failed=$(echo "$line" | sed -n 's/.*; \([0-9]*\) of .*/\1/p')
    # rounds.csv: round,...,seconds (last column); round 1 includes the clients' start-up
    r1=$(awk -F, 'NR == 2 { print $NF }' "$out/rounds.csv" 2>/dev/null)
    rmed=$(awk -F, 'NR > 2 { print $NF }' "$out/rounds.csv" 2>/dev/null | sort -g |
           awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }')
    done_rounds=$(($(wc -l 2>/dev/null < "$out/rounds.csv" || echo 1) - 1))
    full=$(grep -c "unmasked the sum of $n sites" "$out/logs/coordinator.log" 2>/dev/null)
    warns=$(grep -cE "Z (warn|error) +\[" "$out/logs/coordinator.log" 2>/dev/null)
    errors=$(( (rc != 0) + ${failed:-$n} + (rounds - done_rounds) + (rounds - ${full:-0}) + ${warns:-0} ))
    [ -n "$cpu" ] && [ -n "$peak" ] || errors=$((errors + 1))
    if [ $errors -ne 0 ]; then
        status=1
        echo "load_bench: $n clients: exit $rc, ${failed:-?} clients failed, $done_rounds/$rounds" \
             "rounds, ${full:-0} full sums, ${warns:-0} warnings (logs in $out/logs; --keep to" \
             "keep them)" >&2
        tail -3 "$work/sim-$n.txt" >&2
    fi
    printf "%8d %10s %10s %12s %14s %8.1f %7d\n" "$n" "${rmed:--}" "${r1:--}" "${cpu:--}" \
        "${peak:--}" "$wall" "$errors"
    results+=("clients $n round_s ${rmed:-nan} round1_s ${r1:-nan} coord_cpu_s ${cpu:-nan} coord_peak_mb ${peak:-nan} wall_s $wall errors $errors")
done
for r in "${results[@]}"; do echo "$r"; done

# Least-squares line through (N, peak MB); the model's size from its parameter count (the
# secure-aggregation lanes the coordinator logged: parameters + 1 weight lane, 4 bytes each).
lanes=$(grep -ho "[0-9]* lanes" "$work"/run-*/logs/coordinator.log 2>/dev/null | head -1 | cut -d' ' -f1)
printf "%s\n" "${results[@]}" | awk -v lanes="${lanes:-0}" '
    $10 != "nan" { n++; x = $2; y = $10; sx += x; sy += y; sxx += x * x; sxy += x * y }
    END {
        if (n < 2 || n * sxx == sx * sx) { print "fit: needs two or more client counts"; exit }
        b = (n * sxy - sx * sy) / (n * sxx - sx * sx); a = (sy - b * sx) / n
        mkb = lanes * 4 / 1024
        ratio = mkb > 0 ? b * 1024 / mkb : 0
        printf "fit: coordinator peak RSS = %.1f MB + %.1f KB x clients (model %.0f KB: %.3f model sizes per client)\n",
               a, b * 1024, mkb, ratio
        printf "fit_coord_mb_base %.2f fit_kb_per_client %.1f model_kb %.0f per_client_over_model %.3f\n",
               a, b * 1024, mkb, ratio
    }'
exit $status
