#!/usr/bin/env bash
# Hostile review item 3 against the real binaries: one enrolled site (site-3's certificate,
# driven by hostile_starve) opens 24 Upload streams for its train task, each with a valid
# header and then 1 byte every 10 s. The honest sites 1 and 2 (real `fedfuse client`
# processes) must still be served: `fedfuse status` answers during the attack and the run
# completes with them (quorum 2). Before the fix the 24 streams took every upload buffer and
# worker and the run stopped with "0 of 3 sites answered". No duration is asserted; the waits
# are bounded only to turn a hang into a failure.
#   starve.sh FEDFUSE SRC_DIR STARVE
set -uo pipefail
mode=starve fedfuse=$1 src=$2 starve=$3
. "$src/tests/fed/lib.sh"
fed_init ff-starve 15 '*/logs/*.log' attack.txt
demo_secagg="enabled: false" demo_run=t demo_patients=200 demo_baselines=false \
    demo_plan="local_steps: 10, batch_size: 16, lr: 0.002" mkdemo 2 60
simulate_a
copy_b
start_coordinator
port=$(coord_port)
wait_log "listening on port" "$tmp/b/logs/coordinator.log"
pk=$tmp/b/pki
"$starve" 127.0.0.1:$port "$pk/ca.pem" "$pk/sites/site-3.crt" "$pk/sites/site-3.key" 24 > "$tmp/attack.txt" 2>&1 &
pids+=($!)
wait_log "^held" "$tmp/attack.txt"
grep -q "^held" "$tmp/attack.txt" || fail "the attack did not start"
for s in site-1 site-2; do start_client $s; done
fed_status > "$tmp/status.txt" 2>&1 || { cat "$tmp/status.txt"; fail "fedfuse status during the attack"; }
wait_for $cpid 400 || fail "the run did not complete with the honest sites"
[ "$(wc -l < "$tmp/b/rounds.csv")" -eq 3 ] || fail "rounds.csv has not 2 rounds"
grep -Eq "refused Upload: 'site-3' has [0-9]+ calls in progress|site-3: it already has [0-9]+ uploads in progress" \
    "$tmp/b/logs/coordinator.log" || fail "site-3's extra streams were not refused"
grep -E "update from site-[12] accepted" "$tmp/b/logs/coordinator.log" | head -2
echo "attack: $(grep -c '^stream' "$tmp/attack.txt") streams ended early, $(tail -1 "$tmp/attack.txt")"
echo PASS
