#!/bin/bash
# Network and node faults around a whole federated run (label integration). Each mode first
# runs `fedfuse simulate` (run a, uninterrupted), then starts the same consortium by hand
# (run b: coordinator + 3 client processes on loopback, mutual TLS) with one fault injected.
#   link_cut        every client dials the coordinator through ff_proxy, which resets every
#                   open connection after each 700 kB forwarded (6 cuts: inside model
#                   downloads and update uploads) and keeps the link down 1.5 s after each cut.
#                   Clients reconnect with backoff (never reporting the resets as a refused
#                   certificate); all 4 rounds aggregate 3 updates and the
#                   final model is bit-identical (sha256) to run a; the audit log verifies.
#   lost_ack        site-2 drops the acknowledgement of its round-1 update and takes it for a
#                   lost link (FEDFUSE_TEST_RESEND_AT), as when a cut falls after the
#                   coordinator took the update and the link stays down past the transport's
#                   retries: site-2 sends the update again, the coordinator acknowledges the
#                   resend without counting it twice, site-2 writes its receipt, the audit log
#                   verifies, the final model is bit-identical to run a. (The site used to give
#                   the upload up, and the coordinator refused a resend as a duplicate: either
#                   way receipt.missing, seen in link_cut under load.)
#   link_stall      only site-2 goes through the proxy; after site-2 evaluated round 1 the
#                   proxy stalls (forwards nothing, closes nothing) for 12 s, past the 4 s
#                   deadlines: the coordinator names site-2 as missing, the rounds go on with 2
#                   updates; a task of a finished round that reaches site-2 is skipped ("no
#                   longer current"; the client used to exit on its NOT_FOUND download) or
#                   refused as late, depending on timing; site-2 stays up and is in the last
#                   of 5 rounds (3 updates); the audit log verifies.
#   clock_skew      site-2 runs 2 h ahead and site-3 30 min behind (faketime): deadlines are the
#                   coordinator's (clients ignore Task.deadline_unix_ms), certificates are
#                   back-dated 1 h against skew, so the run is bit-identical to run a; audit
#                   timestamps are the coordinator's clock (inside the real run window, never
#                   2 h ahead). A node 2 h behind is refused (its certificate is not yet valid
#                   for it): `fedfuse status` fails and says so. Skipped (77) without faketime.
#   client_diskfull site-2's out_dir (receipts) is a 96 kB tmpfs that is filled after its round-1
#                   receipt: the round-2/3 receipts fail with a message naming the file and
#                   "No space left", the round-1 receipt stays byte-identical, no temp file
#                   is left behind, site-2 keeps training (every round has 3 updates, final
#                   model bit-identical to run a); after space is freed the last receipt is
#                   written. Needs root for mount (skipped with 77 otherwise).
set -u
mode=$1 fedfuse=$2 src=$3 proxy=$4
mnt=""
. "$(dirname "$0")/lib.sh"
fed_init faultnet 8 'b/logs/*.log' 'proxy*.log'

# Run a (reference) and run b's folder with the same consortium files.
prepare() { # rounds deadline
    demo_secagg="enabled: false" demo_run=t demo_patients=200 demo_baselines=false \
        demo_plan="local_steps: 10, batch_size: 16, lr: 0.002" mkdemo "$1" "$2"
    simulate_a
    copy_b
    port=$(coord_port)
}

start_proxy() { # name [ff_proxy options...]: sets proxy_port, proxy_pid
    local name=$1; shift
    "$proxy" "$tmp/$name.port" "$port" "$@" 2> "$tmp/$name.log" &
    proxy_pid=$!; pids+=($proxy_pid)
    for i in $(seq 1 50); do [ -s "$tmp/$name.port" ] && break; sleep 0.1; done
    proxy_port=$(cat "$tmp/$name.port") || fail "proxy did not start"
}

via() { # site proxy_port: the site's client dials the proxy instead of the coordinator
    sed -i "s#^coordinator: 127.0.0.1:.*#coordinator: 127.0.0.1:$2#" "$tmp/b/config/site-$1.yaml"
}

client() { # site [wrapper...]
    start_client "$@"; cl+=($!)
}

finish() { # seconds
    wait_for $cpid "$1" || fail "coordinator failed"
    for p in "${cl[@]}"; do wait_for "$p" 60 || fail "a client failed"; done
}

updates_per_round() { # rounds.csv column 5 = updates aggregated, one line per round
    tail -n +2 "$tmp/b/rounds.csv" | cut -d, -f5 | tr '\n' ' '
}

cl=()
case $mode in
link_cut)
    prepare 4 30
    start_coordinator; sleep 0.5
    start_proxy proxy --cut-every 700000 --cuts 6 --down-ms 1500
    for s in site-1 site-2 site-3; do via $s "$proxy_port"; client $s; done
    finish 180
    kill -TERM $proxy_pid; wait $proxy_pid 2>/dev/null
    cat "$tmp/proxy.log"
    [ "$(grep -c '^proxy: cut' "$tmp/proxy.log")" = 6 ] || fail "the proxy did not cut 6 times"
    grep -q "retrying\|will retry" "$tmp"/b/logs/site-*.log || fail "no client saw the cuts"
    grep -q "link lost after" "$tmp"/b/logs/site-*.log || fail "no cut inside a transfer"
    # A reset link is not a refused certificate (the message used to say so).
    ! grep -q "TLS handshake refused" "$tmp"/b/logs/site-*.log || fail "link cut reported as a TLS refusal"
    echo "updates per round: $(updates_per_round)"
    [ "$(updates_per_round)" = "3 3 3 3 " ] || fail "a round lost a site to a link cut"
    same_model "this run"
    verify "$tmp/b"
    ;;
lost_ack)
    prepare 2 30
    start_coordinator; sleep 0.5
    client site-1; client site-2 env FEDFUSE_TEST_RESEND_AT=upload:1; client site-3
    finish 120
    verify "$tmp/b" "audit verify (site-2's receipt of round 1)"
    grep -q "round 1: the upload did not get through (test hook" "$tmp/b/logs/site-2.log" ||
        fail "site-2 did not send its update again"
    ! grep -q "refused our update" "$tmp/b/logs/site-2.log" || fail "the resend was refused"
    grep -q "site-2 sent its update again" "$tmp/b/logs/coordinator.log" ||
        fail "the coordinator did not recognise the resend"
    echo "updates per round: $(updates_per_round)"
    [ "$(updates_per_round)" = "3 3 " ] || fail "a round did not aggregate 3 updates once each"
    same_model "this run"
    ;;
link_stall)
    prepare 5 4
    start_coordinator; sleep 0.5
    start_proxy proxy
    via site-2 "$proxy_port"
    for s in site-1 site-2 site-3; do client $s; done
    # Stall right after site-2's round-1 evaluation: its next GetTask is already on the way,
    # so the round-2 task comes back through the stalled link after round 2 is over.
    wait_log "round 1: evaluated" "$tmp/b/logs/site-2.log"
    kill -USR2 $proxy_pid; sleep 12; kill -USR2 $proxy_pid
    finish 150
    cat "$tmp/proxy.log"
    grep -q "did not answer: site-2" "$tmp/b/logs/coordinator.log" || fail "site-2 not named as missing"
    # Where the stall lands depends on timing: the task that comes back through the stalled
    # link may belong to a finished round (its model gone: "task no longer current"; or its
    # answer refused as late) or be current. What must hold: site-2 never exits, is named as
    # missing, the rounds go on without it, and it is back in the sum of the last round.
    grep -E "no longer current|is not the current round|stale round" "$tmp/b/logs/site-2.log" | cut -c1-160
    grep -q "site-2: the run is done" "$tmp/b/logs/site-2.log" || fail "site-2 exited before the end of the run"
    echo "updates per round: $(updates_per_round)"
    [ "$(wc -l < "$tmp/b/rounds.csv")" = 6 ] || fail "not all 5 rounds finished"
    updates_per_round | grep -q 2 || fail "no round went on without the stalled site"
    tail -1 "$tmp/b/rounds.csv" | awk -F, '$5 != 3 { exit 1 }' || fail "site-2 did not come back after the stall"
    verify "$tmp/b"
    ;;
clock_skew)
    command -v faketime > /dev/null || { echo "skipped: faketime not installed (scripts/install-deps --test)"; exit 77; }
    # faketime preloads its library ahead of everything; an ASan build of fedfuse would refuse
    # to start ("ASan runtime does not come first"): let it, the interposed calls are the clock.
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
    prepare 3 30
    # Monotonic clocks stay true: only the wall clock (certificates, timestamps) is skewed.
    export FAKETIME_DONT_FAKE_MONOTONIC=1
    t0=$(date -u +%s)
    start_coordinator; sleep 0.5
    st() { # faketime offset -> fedfuse status exit code
        fed_status faketime -f "$1" > "$tmp/status$1.txt" 2>&1
    }
    st "+2h" || { cat "$tmp/status+2h.txt"; fail "status from a clock 2 h ahead"; }
    st "-30m" || { cat "$tmp/status-30m.txt"; fail "status from a clock 30 min behind (inside the 1 h back-dating)"; }
    st "-2h" && fail "status from a clock 2 h behind should be refused"
    cat "$tmp/status-2h.txt"
    grep -qi "not yet valid" "$tmp/status-2h.txt" || fail "the refusal does not say the certificate is not yet valid"
    client site-1
    client site-2 faketime -f "+2h"
    client site-3 faketime -f "-30m"
    finish 150
    t1=$(date -u +%s)
    head -2 "$tmp/b/logs/site-2.log" | cut -c1-80
    echo "updates per round: $(updates_per_round)"
    [ "$(updates_per_round)" = "3 3 3 " ] || fail "a skewed site missed a round"
    same_model "this run"
    verify "$tmp/b"
    $py - "$tmp/b/audit.jsonl" "$t0" "$t1" <<'EOP' || fail "audit timestamps are not the coordinator's clock"
import datetime, json, sys
t0, t1 = int(sys.argv[2]), int(sys.argv[3])
ts = [datetime.datetime.strptime(json.loads(l)["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
      .replace(tzinfo=datetime.timezone.utc).timestamp() for l in open(sys.argv[1])]
assert ts == sorted(ts), "not in order"
new = [t for t in ts if t >= t0 - 1]
assert new and all(t <= t1 + 1 for t in new), (t0, t1, min(new), max(new))
print("audit: %d entries of this run, all inside [%d, %d] (coordinator clock)" % (len(new), t0, t1))
EOP
    ;;
client_diskfull)
    prepare 8 30
    mnt="$tmp/site2-out"; mkdir -p "$mnt"
    mount -t tmpfs -o size=96k tmpfs "$mnt" 2>/dev/null || { mnt=""; echo "skipped: cannot mount a tmpfs; run as root"; exit 77; }
    sed -i "s#^out_dir: .*#out_dir: $mnt#" "$tmp/b/config/site-site-2.yaml"
    start_coordinator; sleep 0.5
    for s in site-1 site-2 site-3; do client $s; done
    r1="$mnt/receipts/site-2-round-0001.json"
    for i in $(seq 1 3000); do [ -s "$r1" ] && break; sleep 0.01; done
    [ -s "$r1" ] || fail "no round-1 receipt"
    h1=$(sha256sum < "$r1")
    dd if=/dev/zero of="$mnt/filler" bs=4k 2>/dev/null   # until ENOSPC
    echo "filled: $(df -k "$mnt" | tail -1)"
    # A round of the tiny model takes tens of milliseconds: free the space as soon as the
    # first write fails; the rounds after that must write their receipts again.
    for i in $(seq 1 6000); do grep -q "receipt not written" "$tmp/b/logs/site-2.log" && break; sleep 0.01; done
    rm -f "$mnt/filler"
    finish 150
    grep "receipt not written" "$tmp/b/logs/site-2.log" | head -3
    grep -q "round 2: receipt not written: .*site-2-round-0002.json.*No space left" "$tmp/b/logs/site-2.log" || fail "no clear error naming the receipt file"
    [ "$(sha256sum < "$r1")" = "$h1" ] || fail "the round-1 receipt changed"
    [ -s "$mnt/receipts/site-2-round-0008.json" ] || fail "no receipt after space was freed"
    ls -A "$mnt/receipts"
    # every file left is a whole receipt (no temp files, nothing torn)
    [ "$(ls -A "$mnt/receipts" | grep -vc '^site-2-round-000[1-8].json$')" = 0 ] || fail "temp files left in receipts/"
    for f in "$mnt/receipts"/*; do $py -c 'import json,sys; json.load(open(sys.argv[1]))' "$f" || fail "torn receipt $f"; done
    echo "updates per round: $(updates_per_round)"
    [ "$(updates_per_round)" = "3 3 3 3 3 3 3 3 " ] || fail "site-2 stopped training when its disk filled"
    same_model "this run"
    # The coordinator's audit log verifies on its own; with the receipts, the auditor is told
    # of exactly the one receipt the full disk lost (site-2, round 2), and nothing else.
    "$fedfuse" audit verify --log "$tmp/b/audit.jsonl" --ca "$tmp/b/pki/ca.pem" > "$tmp/verify.txt" 2>&1 ||
        { cat "$tmp/verify.txt"; fail "audit verify of the log"; }
    cp "$mnt/receipts/"site-2-* "$tmp/b/receipts/" 2>/dev/null
    if "$fedfuse" audit verify --log "$tmp/b/audit.jsonl" --ca "$tmp/b/pki/ca.pem" --receipts "$tmp/b/receipts" \
        --certs "$tmp/b/pki/receipt-certs" > "$tmp/verify.txt" 2>&1; then
        cat "$tmp/verify.txt"; fail "a lost receipt verified"
    fi
    cat "$tmp/verify.txt" | grep -E "^(receipts|finding|verdict)"
    [ "$(grep -c '^finding' "$tmp/verify.txt")" = 1 ] || fail "want exactly one finding"
    grep -q "receipt.missing: site 'site-2' was aggregated in round 2, but its receipt is missing" "$tmp/verify.txt" ||
        fail "the lost receipt is not named"
    ;;
*)
    fail "unknown mode $mode"
    ;;
esac
echo "PASS $mode"
