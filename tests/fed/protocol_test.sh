#!/bin/bash
# The protocol version (issue 20): a site that says Hello with another fedfuse protocol
# version than the coordinator's is refused at the door, with a message naming both versions,
# and the coordinator logs the refusal; the same site with the coordinator's version is taken.
#   version   hello with version-1 and version+1: refused; with the version: ok
set -u
mode=$1 fedfuse=$2 src=$3 hello=$4
. "$(dirname "$0")/lib.sh"
fed_init fedproto 20 '*/logs/*.log'

case $mode in
version)
    demo_secagg="enabled: false" demo_run=p demo_patients=120 demo_baselines=false \
        demo_plan="local_steps: 2, batch_size: 16, lr: 0.002" mkdemo 1 60
    simulate_a
    copy_b
    start_coordinator
    port=$(coord_port)
    wait_log "listening on port" "$tmp/b/logs/coordinator.log"
    want=$(grep -o 'FF_PROTOCOL_VERSION [0-9]*' "$src/transport/include/ff/transport.h" | cut -d' ' -f2)
    [ -n "$want" ] || fail "no FF_PROTOCOL_VERSION in transport.h"
    site() { "$hello" 127.0.0.1:$port "$tmp/b/pki/ca.pem" "$tmp/b/pki/sites/site-1.crt" \
        "$tmp/b/pki/sites/site-1.key" "$1" > "$tmp/hello-$1.txt" 2>&1; echo $?; }
    for v in $((want - 1)) $((want + 1)); do
        rc=$(site $v)
        cat "$tmp/hello-$v.txt"
        [ "$rc" = 1 ] || fail "hello with protocol version $v: exit $rc, not refused"
        grep -q "protocol version $v refused: this coordinator speaks fedfuse protocol version $want" \
            "$tmp/hello-$v.txt" || fail "the refusal does not name both versions"
        wait_log "site site-1 refused: it speaks fedfuse protocol version $v" "$tmp/b/logs/coordinator.log"
        grep -q "site site-1 refused: it speaks fedfuse protocol version $v" \
            "$tmp/b/logs/coordinator.log" || fail "the coordinator did not log the refusal of v$v"
    done
    rc=$(site "$want")
    cat "$tmp/hello-$want.txt"
    [ "$rc" = 0 ] || fail "hello with the coordinator's own version $want: exit $rc"
    ;;
esac
echo PASS
