#!/usr/bin/env bash
# Runs the C model benchmark (build/bench/model_bench) and the PyTorch peer
# (bench/torch_peer.py bench) on the same config at 1 and 2 threads, one after the other in
# the same run, and prints a table of samples/s, peak RSS and the C/torch ratios.
#
#   bench/run_model_bench.sh [--config FILE] [--build DIR] [--steps N] [--threads "1 2"]
#
# Defaults: configs/model-base.yaml (fusion-base, batch 32), build/, 20 torch steps. When
# model_bench is not built yet the script says so and runs the torch side alone. Machine
# readable lines at the end: `threads N train_ratio X infer_ratio Y` (C / torch).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
config=$root/configs/model-base.yaml
build=$root/build
steps=20
threads="1 2"
py=${FF_PYTHON:-/usr/bin/python3}
while [[ $# -gt 0 ]]; do
  case $1 in
    --config) config=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run_model_bench.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
cbench=$build/bench/model_bench
have_c=1
if [[ ! -x $cbench ]]; then
  echo "# $cbench is not built yet (cmake --build $build --target model_bench): torch side only"
  have_c=0
fi
if ! "$py" -c 'import torch' 2>/dev/null; then
  echo "run_model_bench.sh: $py has no torch (apt-get install python3-torch)" >&2
  exit 2
fi

# value KEY FILE: the number after "KEY " on the last line that starts with it
value() { awk -v k="$1" '$1 == k { v = $2 } END { print (v == "" ? "-" : v) }' "$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# config: $config"
for t in $threads; do
  if [[ $have_c == 1 ]]; then
    echo "# running: $cbench --config $config --threads $t"
    "$cbench" --config "$config" --threads "$t" | tee "$tmp/c$t" | sed 's/^/  c> /'
  fi
  echo "# running: $py bench/torch_peer.py bench --config $config --threads $t --batch 32 --steps $steps"
  "$py" "$root/bench/torch_peer.py" bench --config "$config" --threads "$t" --batch 32 \
    --steps "$steps" | tee "$tmp/t$t" | sed 's/^/  torch> /'
done

echo
printf '%-8s %12s %12s %7s %12s %12s %7s %9s %9s %8s\n' threads c_train torch_train ratio \
  c_infer torch_infer ratio c_rss_mb t_rss_mb c_gflops
summary=()
for t in $threads; do
  ct=- ci=- cr=- cg=-
  if [[ $have_c == 1 ]]; then
    ct=$(value train_samples_per_s "$tmp/c$t"); ci=$(value infer_samples_per_s "$tmp/c$t")
    cr=$(value peak_rss_mb "$tmp/c$t"); cg=$(value gflops "$tmp/c$t")
  fi
  tt=$(value torch_train_samples_per_s "$tmp/t$t"); ti=$(value torch_infer_samples_per_s "$tmp/t$t")
  tr=$(value torch_peak_rss_mb "$tmp/t$t")
  rt=$(ratio "$ct" "$tt"); ri=$(ratio "$ci" "$ti")
  printf '%-8s %12s %12s %7s %12s %12s %7s %9s %9s %8s\n' "$t" "$ct" "$tt" "$rt" "$ci" "$ti" "$ri" \
    "$cr" "$tr" "$cg"
  summary+=("threads $t train_ratio $rt infer_ratio $ri")
done
echo
printf '%s\n' "${summary[@]}"
