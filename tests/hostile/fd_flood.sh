#!/usr/bin/env bash
# Hostile review item 2: pre-authentication descriptor exhaustion, against the real binary.
# The coordinator runs with `ulimit -n 256`; fd_flood.py holds 400 idle TCP connections to it
# (more than the limit) and replaces each one the coordinator closes. An operator's `fedfuse
# status` must still get an answer during the flood and after it. Before the fix gRPC 1.51's
# listener died on "Failed accept4: Too many open files" and every later connection hung.
# No timing is asserted: each wait is for a condition, with a generous bound that only turns
# a hang into a failure.
#   fd_flood.sh FEDFUSE
set -u
ff=$1
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d /tmp/ff-fdflood.XXXXXX)
pids=()
cleanup() {
    touch "$tmp/stop"
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    [ -n "${KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; tail -20 "$tmp/coordinator.log"; tail -3 "$tmp/flood.txt" 2>/dev/null; exit 1; }
unset no_proxy NO_PROXY grpc_proxy https_proxy http_proxy

. "$here/lib.sh"
hostile_consortium flood <<EOC
limits: {handshake_timeout_ms: 3000}
EOC
# ulimit in a subshell: soft and hard 256, only for the coordinator
( ulimit -n 256 && exec "$ff" coordinator --config "$tmp/coordinator.yaml" --no-progress ) \
    > "$tmp/coordinator.log" 2>&1 &
cpid=$!; pids+=($cpid)
hostile_port
grep -q "descriptor limit 256: at most [0-9]* connections" "$tmp/coordinator.log" || fail "the descriptor limit and the connection cap are not logged"

status() { # -> 0 when the coordinator answered
    "$ff" status --coordinator 127.0.0.1:$port --cert "$p/op/alice.crt" --key "$p/op/alice.key" \
        --ca "$p/op/ca.crt" --server-name coordinator > "$tmp/status.txt" 2>&1 &&
        grep -q "^consortium flood, run " "$tmp/status.txt"
}
status_within() { # bound-seconds: retries status until it answers; fails after the bound
    local t0=$SECONDS
    until status; do
        kill -0 $cpid 2>/dev/null || fail "the coordinator exited"
        [ $((SECONDS - t0)) -lt "$1" ] || { cat "$tmp/status.txt"; fail "$2"; }
        sleep 0.5
    done
}
status_within 60 "no answer before the flood"

"$here/fd_flood.py" 127.0.0.1 "$port" 400 "$tmp/stop" > "$tmp/flood.txt" 2>&1 &
pids+=($!)
# the flood is in place once more connections were opened than the coordinator has descriptors
for _ in $(seq 1200); do
    n=$(tail -1 "$tmp/flood.txt" 2>/dev/null | awk '{print $2}')
    [ "${n:-0}" -gt 300 ] && break
    sleep 0.1
done
[ "${n:-0}" -gt 300 ] || fail "the flood never opened 300 connections"
status_within 120 "no answer during the flood (listener dead?)"
cat "$tmp/status.txt" | grep -E "connections_(refused|evicted)"
tail -1 "$tmp/flood.txt"
touch "$tmp/stop"
status_within 120 "no answer after the flood"
kill -0 $cpid 2>/dev/null || fail "the coordinator exited"
grep -q "Failed accept4" "$tmp/coordinator.log" && fail "gRPC's listener hit the descriptor limit"
# the counters show the defence at work (evicted or refused idle connections)
grep -Eq "connections_(evicted|refused) +[1-9]" "$tmp/status.txt" || { cat "$tmp/status.txt"; fail "no connection was evicted or refused"; }
echo PASS
