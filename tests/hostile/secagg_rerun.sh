#!/usr/bin/env bash
# Hostile review item 1 (issue #19): secure aggregation defeated by differencing across runs.
# A dishonest coordinator operator runs round 1 of the approved job with sites 1-4, then
# starts again (new run id, fresh checkpoint folder, site-4 dropped from the consortium file)
# and reruns round 1 with sites 1-3: without the sites' guard the two unmasked sums differ by
# exactly site-4's update. Real processes over mutual TLS on loopback. Modes:
#   rerun  run 1 is `fedfuse simulate` (4 sites); run 2 is a new coordinator process with the
#          3-site consortium and the same sites restarted from their own configs (their state
#          folder is run 1's). Each site declines round 1 with the guard's reason; the
#          coordinator logs the reason, `fedfuse status` shows secagg_guard_refused for each
#          site, and no sum is ever unmasked in run 2.
#   crash  long-running clients (never restarted) with a fresh state folder: the coordinator
#          computes round 1's sum over 4 sites and is killed right after (test hook
#          FEDFUSE_TEST_KILL_AT=aggregate:1), then started again with site-4 dropped; the same
#          client processes refuse, and so does site-1 after its own restart (kill -9).
# Waits are for conditions, with generous watchdogs only; nothing depends on timing.
set -u
mode=$1 fedfuse=$2 src=$3
. "$src/tests/fed/lib.sh"
fed_init hostile-secagg 15 'a/logs/*.log' 'a/sim.txt' 'b/*.log' 'c/*.log'
[ $mode = crash ] && need_test_hooks
mkdir -p "$tmp/b" "$tmp/c"

# Run 1's consortium: 4 sites, secure aggregation with t=3 (valid for 4 and for 3 sites).
cat > "$tmp/demo.yaml" <<EOC
run_name: rerun
data: {dir: $tmp/data, sites: 4, patients: 120, seed: 3}
model_config: $src/configs/model-tiny.yaml
rounds: 1
seed: 5
plan: {local_steps: 4, batch_size: 16, lr: 0.002}
min_sites: 2
deadlines: {train: 120, evaluate: 120}
secure_aggregation: {enabled: true, threshold: 3}
baselines: false
timeout: 300
EOC
"$fedfuse" simulate --config "$tmp/demo.yaml" --out "$tmp/a" > "$tmp/a.txt" 2>&1 || { cat "$tmp/a.txt"; fail "simulate (run 1)"; }
port=$(grep -o "127.0.0.1:[0-9]*" "$tmp/a/config/coordinator.yaml" | cut -d: -f2)

# coordinator_config out consortium-sites...: run 1's coordinator config with another out and
# checkpoint folder and a consortium file of the given sites (same CA, CRL, job, port).
coordinator_config() {
    local out=$1; shift
    mkdir -p "$out"
    { echo "consortium: fedfuse-demo"; echo "ca: $tmp/a/pki/ca/ca.crt"; echo "crl: $tmp/a/pki/ca/crl.pem"
      echo "sites:"; for s in "$@"; do echo "  - name: $s"; done; } > "$out/consortium.yaml"
    sed -e "s#^out_dir: .*#out_dir: $out#" -e "s#^checkpoint_dir: .*#checkpoint_dir: $out/checkpoints#" \
        -e "s#^consortium: .*#consortium: $out/consortium.yaml#" "$tmp/a/config/coordinator.yaml" > "$out/coordinator.yaml"
    # the run goes on offering round 1 (every attempt is declined) until the test stops it
    echo "max_retries: 1000" >> "$out/coordinator.yaml"
}

coordinator() { # out [env...]: starts the coordinator of out/coordinator.yaml, sets cpid
    local out=$1; shift
    env "$@" "$fedfuse" coordinator --config "$out/coordinator.yaml" --no-progress >> "$out/coordinator.log" 2>&1 &
    cpid=$!; pids+=($cpid)
}

declare -A cl
client() { # site config-folder log-folder: starts the site's client, sets cl[site]
    "$fedfuse" client --config "$2/site-$1.yaml" >> "$3/$1.log" 2>&1 &
    cl[$1]=$!; pids+=($!)
}

refusals() { # log: how many times the site refused round 1 with the guard's reason
    grep -c "round 1: secure aggregation refused by this site: secure-aggregation guard: round 1 of this job from model .* was already summed over {site-1, site-2, site-3, site-4}; refusing a sum over {site-1, site-2, site-3}" "$1" 2>/dev/null
}

# Every site of run 2 says no with the guard's reason, the coordinator logs it and `fedfuse
# status` shows the code; no sum was unmasked.
refused_everywhere() { # out log-folder
    local i s ok
    for i in $(seq 1 600); do
        "$fedfuse" status --coordinator 127.0.0.1:$port --cert "$tmp/a/pki/sites/site-1.crt" \
            --key "$tmp/a/pki/sites/site-1.key" --ca "$tmp/a/pki/ca.pem" --server-name coordinator \
            > "$tmp/status.txt" 2>&1
        ok=1
        for s in site-1 site-2 site-3; do grep -Eq "^$s .*secagg_guard_refused" "$tmp/status.txt" || ok=0; done
        [ $ok = 1 ] && break
        ! grep -q "unmasked the sum" "$1/coordinator.log" || fail "run 2 unmasked a sum: $(grep 'unmasked the sum' "$1/coordinator.log")"
        kill -0 $cpid 2>/dev/null || fail "the coordinator of run 2 exited"
        sleep 0.5
    done
    cat "$tmp/status.txt"
    [ $ok = 1 ] || fail "fedfuse status never showed secagg_guard_refused for sites 1-3"
    for s in site-1 site-2 site-3; do
        [ "$(refusals "$2/$s.log")" -ge 1 ] || fail "$s did not refuse with the guard's reason"
        grep -q "round 1 phase advertise_keys: site '$s' declined its task: secure aggregation refused by this site: secure-aggregation guard: round 1 .*refusing a sum over {site-1, site-2, site-3}" \
            "$1/coordinator.log" || fail "the coordinator did not log $s's reason"
    done
    ! grep -q "unmasked the sum" "$1/coordinator.log" || fail "run 2 unmasked a sum"
    ! grep -q '"event":"aggregate"' "$1/audit.jsonl" || fail "run 2's audit log has an aggregate"
    echo "run 2: sites 1-3 refused round 1 over {site-1, site-2, site-3}; no sum unmasked"
}

case $mode in
rerun)
    grep -q "round 1: unmasked the sum of 4 sites" "$tmp/a/logs/coordinator.log" || fail "run 1 did not sum 4 sites"
    coordinator_config "$tmp/b" site-1 site-2 site-3
    coordinator "$tmp/b"
    for s in site-1 site-2 site-3; do client $s "$tmp/a/config" "$tmp/b"; done
    refused_everywhere "$tmp/b" "$tmp/b"
    # the record that refused: run 1's set and survivors, private to the site
    for s in site-1 site-2 site-3; do
        $py - "$tmp/a/secagg-guard-$s.json" <<'EOP' || fail "$s's guard record"
import json, os, sys
c = json.load(open(sys.argv[1]))["contributions"]
four = ["site-1", "site-2", "site-3", "site-4"]
assert len(c) == 1 and c[0]["round"] == 1 and c[0]["sites"] == four and c[0]["survivors"] == four, c
assert os.stat(sys.argv[1]).st_mode & 0o777 == 0o600
EOP
    done
    ;;
crash)
    # run 1 by hand: fresh site state folder $tmp/s, long-running clients
    mkdir -p "$tmp/s" "$tmp/sc"
    for s in site-1 site-2 site-3 site-4; do
        sed -e "s#^out_dir: .*#out_dir: $tmp/s#" "$tmp/a/config/site-$s.yaml" > "$tmp/sc/site-$s.yaml"
    done
    coordinator_config "$tmp/c" site-1 site-2 site-3 site-4
    coordinator "$tmp/c" FEDFUSE_TEST_KILL_AT=aggregate:1
    for s in site-1 site-2 site-3 site-4; do client $s "$tmp/sc" "$tmp/c"; done
    wait_for $cpid 240; st=$?
    [ $st = 137 ] || fail "coordinator of run 1 ended with $st, not killed at aggregate"
    grep -q "round 1: unmasked the sum of 4 sites" "$tmp/c/coordinator.log" || fail "run 1 did not sum 4 sites"
    # the crash: restarted with site-4 dropped; the clients of run 1 go on
    coordinator_config "$tmp/b" site-1 site-2 site-3
    coordinator "$tmp/b"
    refused_everywhere "$tmp/b" "$tmp/c"
    # site-1 restarted: the guard is on disk, not in the process
    n=$(refusals "$tmp/c/site-1.log")
    kill -9 "${cl[site-1]}"; wait "${cl[site-1]}" 2>/dev/null
    client site-1 "$tmp/sc" "$tmp/c"
    for i in $(seq 1 600); do [ "$(refusals "$tmp/c/site-1.log")" -gt "$n" ] && break; sleep 0.5; done
    [ "$(refusals "$tmp/c/site-1.log")" -gt "$n" ] || fail "site-1 did not refuse again after its restart"
    ! grep -q "unmasked the sum" "$tmp/b/coordinator.log" || fail "run 2 unmasked a sum"
    echo "site-1 restarted: refused again"
    ;;
*)
    fail "unknown mode $mode"
    ;;
esac
echo PASS
