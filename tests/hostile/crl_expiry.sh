#!/usr/bin/env bash
# Hostile review item 6, the coordinator's side, against the real binary with its clock moved
# by faketime (the CRL that `pki init` writes is valid 30 days):
#   +25 days: the coordinator warns (log line, `crl_warning` in status, a `warning:` line in
#             `fedfuse status`), and `fedfuse doctor` on its config fails "CRL not stale";
#   +31 days: the documented choice at expiry, fail closed: an ERROR line, every peer refused
#             ("CRL has expired"); `fedfuse pki crl` then renews the list and the running
#             coordinator answers again without a restart.
# Waits are for conditions with generous bounds; no duration is asserted.
set -u
ff=$1
src=$(cd "$(dirname "$0")/../.." && pwd)
command -v faketime > /dev/null || { echo "SKIPPED: faketime is not installed (scripts/install-deps --test)"; exit 77; }
tmp=$(mktemp -d /tmp/ff-crlexp.XXXXXX)
cpid=
cleanup() { [ -n "$cpid" ] && kill -9 "$cpid" 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; tail -15 "$tmp/coordinator.log" 2>/dev/null; exit 1; }
unset no_proxy NO_PROXY grpc_proxy https_proxy http_proxy

. "$(dirname "$0")/lib.sh"
hostile_consortium crlexp <<EOC
limits: {crl_warn_days: 7}
EOC

start() { # faketime offset
    rm -rf "$tmp/out"
    : > "$tmp/coordinator.log"
    faketime -f "$1" "$ff" coordinator --config "$tmp/coordinator.yaml" --no-progress > "$tmp/coordinator.log" 2>&1 &
    cpid=$!
    hostile_port
}
stop() { kill "$cpid" 2>/dev/null; wait "$cpid" 2>/dev/null; cpid=; }
status() { # faketime offset
    faketime -f "$1" "$ff" status --coordinator 127.0.0.1:$port --cert "$p/op/alice.crt" \
        --key "$p/op/alice.key" --ca "$p/op/ca.crt" --server-name coordinator > "$tmp/status.txt" 2>&1
}
wait_log() { for _ in $(seq 600); do grep -q "$1" "$tmp/coordinator.log" && return 0; sleep 0.1; done; return 1; }

# ---- +25 days: warned ahead --------------------------------------------------------------
start +25d
wait_log "warn .*the revocation list .* expires in [45]\.[0-9] days" || fail "no warning before expiry in the log"
status +25d || { cat "$tmp/status.txt"; fail "status at +25 days"; }
grep -q "^warning: the revocation list .* expires in [45]\.[0-9] days" "$tmp/status.txt" || { cat "$tmp/status.txt"; fail "no warning in status"; }
faketime -f +25d "$ff" status --coordinator 127.0.0.1:$port --cert "$p/op/alice.crt" --key "$p/op/alice.key" \
    --ca "$p/op/ca.crt" --server-name coordinator --json > "$tmp/status.json" || fail "status --json"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert 4*86400 < d["crl_expires_in_s"] < 6*86400 and "expires in" in d["crl_warning"], d' "$tmp/status.json" || fail "status --json crl fields"
faketime -f +25d "$ff" doctor --config "$tmp/coordinator.yaml" > "$tmp/doctor.txt" 2>&1
grep -q "FAIL CRL not stale: .* expires in [45]\.[0-9] days" "$tmp/doctor.txt" || { cat "$tmp/doctor.txt"; fail "doctor does not report the CRL's expiry"; }
stop

# ---- +1 day: no warning -------------------------------------------------------------------
start +1d
status +1d || { cat "$tmp/status.txt"; fail "status at +1 day"; }
grep -q "^warning:" "$tmp/status.txt" && fail "a warning 29 days before expiry"
stop

# ---- +31 days: expired, fail closed; renewed without a restart ---------------------------
start +31d
wait_log "error .*the revocation list .* expired at" || fail "no error line at expiry"
status +31d && fail "a peer was served with an expired CRL"
wait_log "CRL has expired" || fail "the refusal does not say the CRL has expired"
faketime -f +31d "$ff" pki crl --ca "$p/ca" > /dev/null || fail "pki crl"
ok=0
for _ in $(seq 120); do status +31d && { ok=1; break; }; sleep 0.5; done
[ $ok = 1 ] || { cat "$tmp/status.txt"; fail "the renewed CRL was not picked up"; }
grep -q "^warning:" "$tmp/status.txt" && fail "still warned after renewal"
stop
echo PASS
