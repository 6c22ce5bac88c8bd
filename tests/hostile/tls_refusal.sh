#!/usr/bin/env bash
# Hostile review, "also found": a site that refuses an impersonating server (a certificate of
# another CA, served by `openssl s_server` as an independent peer) must say that it refused,
# not blame the coordinator for refusing it.
set -u
ff=$1
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
"$ff" pki init --out "$tmp/ca" --name real > /dev/null || fail "pki init"
"$ff" pki init --out "$tmp/evil" --name evil > /dev/null || fail "pki init evil"
"$ff" pki issue --site site-1 --ca "$tmp/ca" --out "$tmp/s1" > /dev/null || fail "issue"
# A free port is picked here and bound by s_server later (with -quiet it does not say which
# port it chose, and without it it closes the connection itself): if another process took
# the port in between, s_server exits and another port is tried. Waits are for conditions,
# bounded only to turn a hang into a failure.
listening() { # 0 once s_server accepts connections on $port; 2 when it exited
    for _ in $(seq 600); do
        kill -0 "$pid" 2>/dev/null || return 2
        (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && kill -0 "$pid" 2>/dev/null && return 0
        sleep 0.1
    done
    fail "openssl s_server did not listen within 60 s"
}
for _ in 1 2 3 4 5; do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    openssl s_server -accept "$port" -cert "$tmp/evil/coordinator.crt" -key "$tmp/evil/coordinator.key" \
        -alpn h2 -quiet > /dev/null 2>&1 &
    pid=$!
    listening && break
    wait "$pid" 2>/dev/null; pid=
done
[ -n "$pid" ] || fail "openssl s_server could not bind a port"
# The refusal comes at the handshake; the long timeout only keeps a loaded machine from
# turning it into a timeout.
"$ff" ping --coordinator 127.0.0.1:$port --cert "$tmp/s1/site-1.crt" --key "$tmp/s1/site-1.key" \
    --ca "$tmp/ca/ca.crt" --count 1 --timeout-ms 60000 > "$tmp/out.txt" 2>&1 && fail "ping succeeded"
grep -q "TLS handshake refused by this site: the server's certificate was not accepted" "$tmp/out.txt" ||
    { cat "$tmp/out.txt"; fail "the refusal is not attributed to this site"; }
! grep -q "refused by coordinator" "$tmp/out.txt" || fail "still blames the coordinator"
echo PASS
