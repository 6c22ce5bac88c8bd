#!/usr/bin/env bash
# deploy_walkthrough: runs the walkthrough of docs/operations.md (section 15) from the document
# itself, so the docs and this test cannot drift: every ```sh block preceded by the line
# `<!-- walkthrough -->` is extracted in order and run, as written, by one bash in a fresh
# empty folder with this build's fedfuse on the PATH (and PORT set to a free port).
#
# What the test adds around the blocks, and nothing else:
# - hospital-c's first node hangs at the start of round 2 (FEDFUSE_TEST_STOP_AT, a test hook):
#   so round 2 waits for it, deterministically, while hospital-d joins and until hospital-c is
#   revoked; then it is resumed (SIGCONT) and must stop on its own with "certificate revoked".
# - the checks at the end: the coordinator printed the `job` line of `fedfuse job hash`,
#   hospital-d trained in round 3 (the round after it joined), no
#   phase waited for a deadline, the operator's status listed the sites, no hospital key is
#   outside its hospital's folder.
# Waits are for log lines (the blocks' own `waitfor`, up to 10 minutes each), never for time.
#
# usage: walkthrough.sh FEDFUSE OPERATIONS.md     (exit 77 = skipped: no test hooks)
set -uo pipefail
fedfuse=$1 doc=$2
if [ "${FF_TEST_HOOKS:-OFF}" != ON ]; then
    echo "SKIPPED: the walkthrough test needs the test hooks (FEDFUSE_TEST_STOP_AT); configure" \
         "with -DFF_TEST_HOOKS=ON (scripts/build and scripts/test do)"
    exit 77
fi
base=$(mktemp -d /tmp/deploy_walkthrough.XXXXXX)
work=$base/work bin=$base/bin blocks=$base/blocks
mkdir -p "$work" "$bin" "$blocks"
ln -s "$(readlink -f "$fedfuse")" "$bin/fedfuse"
pgid=

cleanup() {
    [ -n "$pgid" ] && kill -9 -- "-$pgid" 2>/dev/null
    [ -n "${KEEP:-}" ] || rm -rf "$base"
}
trap cleanup EXIT
trap 'exit 1' INT TERM   # the EXIT trap then stops the walkthrough's processes

fail() {
    echo "FAIL: $*"
    local f
    for f in "$work"/coordinator/coordinator.log "$work"/hospital-*/client.log "$work"/run.log; do
        [ -f "$f" ] && { echo "== $f"; tail -40 "$f"; }
    done
    exit 1
}

# The blocks, in document order: blocks/N.sh. A marker must be followed by a ```sh block.
awk -v dir="$blocks" '
    /^<!-- walkthrough -->$/ { if (armed) exit 3; armed = 1; next }
    armed && /^```sh$/ { armed = 0; inblk = 1; n++; f = dir "/" n ".sh"; printf "" > f; next }
    armed { exit 3 }
    inblk && /^```$/ { inblk = 0; close(f); next }
    inblk { print > f }
    END { if (armed || inblk) exit 3; print n > (dir "/count") }
' "$doc" || fail "$doc: a <!-- walkthrough --> marker not followed by a \`\`\`sh block"
nblocks=$(cat "$blocks/count")
[ "$nblocks" -ge 10 ] || fail "$doc: only $nblocks walkthrough blocks (section 15 has more)"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# The script one person would type: the blocks in order, with the test's hooks between them.
{
    echo 'set -e -o pipefail'
    echo "export PATH='$bin':\"\$PATH\" PORT=$port"
    # hospital-c's first node hangs at the start of round 2 (mkdir: armed once)
    echo "fedfuse() {
    if [ \"\${1:-}\" = client ] && [ \"\${3:-}\" = hospital-c/client.yaml ] && mkdir '$base/armed' 2>/dev/null; then
        FEDFUSE_TEST_STOP_AT=advertise_keys:2 command fedfuse \"\$@\"
    else
        command fedfuse \"\$@\"
    fi
}"
    for i in $(seq 1 "$nblocks"); do
        if grep -q "^join hospital-d" "$blocks/$i.sh"; then
            # round 2 cannot end before hospital-c is revoked: hospital-d joins mid-run
            echo "waitfor 'FEDFUSE_TEST_STOP_AT: SIGSTOP' hospital-c/client.log"
        fi
        echo "echo '>>> walkthrough block $i'"
        cat "$blocks/$i.sh"
        if grep -q "^fedfuse pki revoke" "$blocks/$i.sh"; then
            # the hung node wakes up and must now stop by itself: certificate revoked
            echo "kill -CONT \$(sed -n 's/.*FEDFUSE_TEST_STOP_AT: SIGSTOP.*(pid \\([0-9]*\\)).*/\\1/p' hospital-c/client.log)"
        fi
    done
    echo "wait"
} > "$base/run.sh"

cd "$work" || fail "no work folder"
setsid bash "$base/run.sh" > "$work/run.log" 2>&1 &
runner=$!
pgid=$runner
wait "$runner" || fail "a walkthrough command failed (run.log above)"
echo "the $nblocks walkthrough blocks of $doc ran"

log=coordinator/coordinator.log
grep -qx "$(cat coordinator/job.txt)" "$log" ||
    fail "the coordinator's job line differs from \`fedfuse job hash\`'s ($(cat coordinator/job.txt))"
grep -q "round 3: masked input from hospital-d accepted" "$log" ||
    fail "hospital-d did not train in round 3, the round after it joined"
grep -q "round [12]: masked input from hospital-d" "$log" &&
    fail "hospital-d trained before it joined"
grep -q "round 2 phase advertise_keys: not waiting for site 'hospital-c' (certificate revoked)" "$log" ||
    fail "round 2 did not stop waiting for the revoked hospital-c"
grep -q "deadline of .* passed" "$log" && fail "a phase waited for its deadline"
grep -q "certificate revoked" hospital-c/client.log || fail "hospital-c did not stop as revoked"
grep -q "hospital-d" operator/status.txt || fail "the operator's status does not list hospital-d"
grep -q "name: hospital-d" coordinator/consortium.yaml || fail "consortium.yaml lacks hospital-d"
for h in hospital-a hospital-b hospital-c hospital-d; do
    [ "$(find . -name "$h.key" | wc -l)" = 1 ] && [ -f "$h/pki/$h.key" ] ||
        fail "$h's key is not only in $h/pki"
done
echo "deploy_walkthrough: passed"
