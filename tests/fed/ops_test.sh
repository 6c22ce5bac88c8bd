#!/usr/bin/env bash
# Operating a node (docs/operations.md): `fedfuse doctor` on a healthy site, a site whose
# key is 0644, whose certificate is revoked and whose coordinator is down (each exits 1 with
# exactly that FAIL line), on the coordinator's own config, and with --json.
#   ops_test.sh MODE FEDFUSE SRC_DIR
# A one-site consortium on loopback: its own PKI, a coordinator that waits for the site
# (the site never trains: doctor and status only talk to it), a tiny synthetic site.
set -uo pipefail
mode=$1 fedfuse=$2 src=$3
. "$src/tests/fed/lib.sh"
fed_init "ff-ops-$mode" 30 coordinator.log proxy.log
unset no_proxy NO_PROXY grpc_proxy https_proxy http_proxy

setup() {
    local p=$tmp/pki
    "$fedfuse" pki init --out "$p/ca" --name ops-test > /dev/null || fail "pki init"
    "$fedfuse" pki issue --site coordinator --role coordinator --ca "$p/ca" --out "$p/coord" > /dev/null || fail "pki issue coordinator"
    "$fedfuse" pki issue --site site-1 --ca "$p/ca" --out "$p/site" > /dev/null || fail "pki issue site"
    "$fedfuse" synth --sites 2 --patients 40 --no-image-site 0 --seed 1 --quiet --out "$tmp/data" > /dev/null || fail "synth"
    cat > "$tmp/consortium.yaml" <<EOC
consortium: ops-test
ca: $p/ca/ca.crt
crl: $p/ca/crl.pem
sites:
  - name: site-1
  - name: site-2
EOC
    cat > "$tmp/coordinator.yaml" <<EOC
run_name: ops
rounds: 1
listen: 127.0.0.1:0
consortium: $tmp/consortium.yaml
model_config: $src/configs/model-tiny.yaml
checkpoint_dir: $tmp/out/checkpoints
out_dir: $tmp/out
deadlines: {train: 100000, evaluate: 100000}
tls: {cert: $p/coord/coordinator.crt, key: $p/coord/coordinator.key}
EOC
    [ "$mode" = metrics ] && echo "metrics: 127.0.0.1:0" >> "$tmp/coordinator.yaml"
    job=$("$fedfuse" job --config "$tmp/coordinator.yaml" --model-config "$src/configs/model-tiny.yaml" | sed -n 's/^job //p')
    [ -n "$job" ] || fail "no job hash"
    cat > "$tmp/policy.yaml" <<EOC
site: site-1
accepted_jobs: [$job]
require_secure_aggregation: false
dp: {required: false}
EOC
}

start_coord() {
    "$fedfuse" coordinator --config "$tmp/coordinator.yaml" --no-progress >> "$tmp/coordinator.log" 2>&1 &
    cpid=$!; pids+=($cpid)
    wait_log "listening on port" "$tmp/coordinator.log"
    port=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$tmp/coordinator.log" | tail -1)
    [ -n "$port" ] || fail "coordinator did not start"
}

site_yaml() { # extra lines on stdin
    cat > "$tmp/site.yaml" <<EOC
site: site-1
coordinator: 127.0.0.1:$port
cert: $tmp/pki/site/site-1.crt
key: $tmp/pki/site/site-1.key
ca: $tmp/pki/site/ca.crt
data: $tmp/data/site-1
model_config: $src/configs/model-tiny.yaml
policy: $tmp/policy.yaml
out_dir: $tmp/site-out
EOC
    cat >> "$tmp/site.yaml"
}

doctor() { # expected-exit file [args...]
    local want=$1 out=$2; shift 2
    "$fedfuse" doctor "$@" > "$out" 2>&1
    local rc=$?
    cat "$out"
    [ $rc -eq "$want" ] || fail "doctor exited $rc, expected $want"
}

only_fail() { # file check: exactly one FAIL line, naming check
    local n
    n=$(grep -c '^FAIL ' "$1")
    [ "$n" -eq 1 ] || fail "expected exactly one FAIL line, got $n"
    grep -q "^FAIL $2: " "$1" || fail "the FAIL line does not name '$2'"
}

setup
start_coord
chmod 0600 "$tmp/pki/site/site-1.key"
site_yaml < /dev/null

case $mode in
doctor)
    echo "== healthy site"
    doctor 0 "$tmp/ok.txt" --config "$tmp/site.yaml"
    for c in "config parses" "files exist" "key permissions" "key matches certificate" "certificate role" \
             "certificate chains to CA" "certificate not expiring" "site name matches certificate" \
             "policy" "data check" "free disk" "coordinator DNS" "coordinator TCP" \
             "coordinator TLS handshake" "coordinator authenticated ping" "clock skew"; do
        grep -q "^ok $c\( (\|$\)" "$tmp/ok.txt" || fail "healthy site: no 'ok $c' line"
    done
    grep -q "^ok coordinator authenticated ping (consortium ops-test, round trip [0-9.]* ms)" "$tmp/ok.txt" || fail "no round trip"
    grep -q '^FAIL' "$tmp/ok.txt" && fail "healthy site has a FAIL line"

    echo "== --json"
    doctor 0 "$tmp/ok.json" --config "$tmp/site.yaml" --json
    /usr/bin/python3 - "$tmp/ok.json" <<'EOP' || fail "--json"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["ok"] is True and j["failed"] == 0 and j["kind"] == "site", j
names = {c["check"]: c["status"] for c in j["checks"]}
assert names["coordinator authenticated ping"] == "ok", names
assert names["clock skew"] == "ok", names
EOP

    echo "== coordinator config"
    doctor 0 "$tmp/coord.txt" --config "$tmp/coordinator.yaml"
    grep -q "^ok certificate not revoked" "$tmp/coord.txt" || fail "coordinator: revocation not checked"
    grep -q "^ok CRL not stale" "$tmp/coord.txt" || fail "coordinator: CRL freshness not checked"

    echo "== key 0644"
    chmod 0644 "$tmp/pki/site/site-1.key"
    doctor 1 "$tmp/key.txt" --config "$tmp/site.yaml"
    only_fail "$tmp/key.txt" "key permissions"
    grep -q "^FAIL key permissions: .*site-1.key is mode 0644 (readable by every user); fix: chmod 0600" "$tmp/key.txt" || fail "key line"
    chmod 0600 "$tmp/pki/site/site-1.key"

    echo "== certificate revoked"
    "$fedfuse" pki revoke --ca "$tmp/pki/ca" --cert "$tmp/pki/site/site-1.crt" > /dev/null || fail "pki revoke"
    wait_log "revocation list .* loaded" "$tmp/coordinator.log"
    doctor 1 "$tmp/revoked.txt" --config "$tmp/site.yaml"
    only_fail "$tmp/revoked.txt" "certificate not revoked"
    grep -q "^FAIL certificate not revoked: .*certificate revoked" "$tmp/revoked.txt" || fail "revoked line"

    echo "== coordinator down"
    kill -9 "$cpid"; wait "$cpid" 2>/dev/null
    doctor 1 "$tmp/down.txt" --config "$tmp/site.yaml"
    only_fail "$tmp/down.txt" "coordinator TCP"
    grep -q "^FAIL coordinator TCP: cannot connect to 127.0.0.1:$port (Connection refused): the coordinator is down" "$tmp/down.txt" || fail "down line"
    ;;
metrics)
    wait_log "metrics: Prometheus text on" "$tmp/coordinator.log"
    mport=$(sed -n 's|.*metrics: Prometheus text on http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' "$tmp/coordinator.log")
    [ -n "$mport" ] || fail "no metrics endpoint in the log"
    # the site calls in once (doctor's authenticated ping), so the counters have moved
    "$fedfuse" doctor --config "$tmp/site.yaml" > "$tmp/doctor.txt" 2>&1 || { cat "$tmp/doctor.txt"; fail "doctor"; }
    /usr/bin/python3 - "$mport" "$tmp/metrics.txt" <<'EOP' || fail "scrape"
import sys, urllib.request, urllib.error
base = "http://127.0.0.1:%s" % sys.argv[1]
r = urllib.request.urlopen(base + "/metrics", timeout=30)
assert r.status == 200, r.status
assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers["Content-Type"]
open(sys.argv[2], "wb").write(r.read())
try:
    urllib.request.urlopen(base + "/other", timeout=30)
    raise SystemExit("GET /other did not fail")
except urllib.error.HTTPError as e:
    assert e.code == 404, e.code
EOP
    cat "$tmp/metrics.txt"
    command -v promtool > /dev/null || fail "promtool is not installed (scripts/install-deps --test: prometheus)"
    promtool check metrics < "$tmp/metrics.txt" || fail "promtool check metrics"
    for m in fedfuse_rounds_completed_total fedfuse_phase fedfuse_phase_age_seconds \
             fedfuse_sites_connected fedfuse_sites_selected fedfuse_phase_sites_answered_total \
             fedfuse_phase_sites_failed_total fedfuse_transport_received_bytes_total \
             fedfuse_transport_sent_bytes_total fedfuse_secagg_recoveries_total \
             fedfuse_privacy_epsilon_spent fedfuse_errors_total process_resident_memory_bytes; do
        grep -q "^$m[ {]" "$tmp/metrics.txt" || fail "metric $m missing"
    done
    grep -q '^fedfuse_phase{phase="train"} 1$' "$tmp/metrics.txt" || fail "the round's train phase is not shown"
    grep -q '^fedfuse_sites_connected 1$' "$tmp/metrics.txt" || fail "site-1 not counted as connected"
    grep -q '^fedfuse_errors_total{code="refused_stale_round"} 0$' "$tmp/metrics.txt" || fail "refusal codes"
    awk '$1 == "fedfuse_transport_sent_bytes_total" && $2 > 0 {ok=1} END {exit !ok}' "$tmp/metrics.txt" || fail "no bytes counted"
    ;;
status)
    # site-1's policy accepts another job: it declines the task and says why by code; site-2
    # never comes, so the round stays open and the coordinator keeps answering
    sed -i "s/accepted_jobs: \[.*\]/accepted_jobs: [$(printf '%064d' 0)]/" "$tmp/policy.yaml"
    "$fedfuse" client --config "$tmp/site.yaml" >> "$tmp/client.log" 2>&1 &
    pids+=($!)
    status() {
        "$fedfuse" status --coordinator 127.0.0.1:$port --cert "$tmp/pki/site/site-1.crt" \
            --key "$tmp/pki/site/site-1.key" --ca "$tmp/pki/site/ca.crt" "$@"
    }
    for i in $(seq 1 300); do
        status > "$tmp/status.txt" 2>&1 && grep -q "^site-1 .*task_refused_policy" "$tmp/status.txt" && break
        sleep 0.1
    done
    cat "$tmp/status.txt"
    grep -Eq "^site                 last seen  state +last error +version +clock skew +roster" "$tmp/status.txt" || fail "no site table header"
    grep -Eq "^site-1 +[0-9]+ s ago +(declined|waiting) +task_refused_policy +0\.[0-9.]+ +[-+][0-9.]+ s " "$tmp/status.txt" || fail "site-1's row"
    grep -Eq "^site-2 +never +unknown +- +- +- " "$tmp/status.txt" || fail "site-2's row"
    status --json > "$tmp/status.json" || fail "status --json"
    /usr/bin/python3 - "$tmp/status.json" <<'EOP' || fail "status --json site_status"
import json, sys
s = json.load(open(sys.argv[1]))["site_status"]["site-1"]
assert s["error_code"] == "task_refused_policy", s
assert s["error"].startswith("the site policy refused a task"), s
assert s["version"] and abs(s["clock_skew_s"]) < 30, s
EOP
    # what travels is the code and its fixed text: no path under the data folder, no job hash
    grep -q "$tmp/data" "$tmp/status.txt" "$tmp/status.json" && fail "a data path reached the coordinator"
    grep -q "site site-1 reports error task_refused_policy: the site policy refused a task" "$tmp/coordinator.log" || fail "coordinator log"
    ;;
proxy)
    # the client's traffic goes through an HTTP CONNECT proxy on loopback (config key, then the
    # https_proxy environment): doctor, a client run's polls and status, mutual TLS inside
    /usr/bin/python3 "$src/tests/fed/connect_proxy.py" "$tmp/proxy.port" "$tmp/proxy.log" &
    pids+=($!)
    for i in $(seq 1 300); do [ -s "$tmp/proxy.port" ] && break; sleep 0.1; done
    pport=$(cat "$tmp/proxy.port") || fail "proxy did not start"
    echo "proxy: 127.0.0.1:$pport" >> "$tmp/site.yaml"
    doctor 0 "$tmp/doctor.txt" --config "$tmp/site.yaml"
    grep -q "^ok coordinator TCP (127.0.0.1:$port via proxy 127.0.0.1:$pport)" "$tmp/doctor.txt" || fail "doctor did not go through the proxy"
    grep -q "^ok coordinator authenticated ping" "$tmp/doctor.txt" || fail "no ping through the proxy"
    "$fedfuse" client --config "$tmp/site.yaml" >> "$tmp/client.log" 2>&1 &
    pids+=($!)
    wait_log "uploaded .* (round 1)" "$tmp/client.log"
    grep -q "uploaded .* (round 1)" "$tmp/client.log" || { cat "$tmp/client.log"; fail "client did not upload through the proxy"; }
    # the environment variable, for a command without a proxy key (status)
    https_proxy=http://127.0.0.1:$pport "$fedfuse" status --coordinator 127.0.0.1:$port \
        --cert "$tmp/pki/site/site-1.crt" --key "$tmp/pki/site/site-1.key" --ca "$tmp/pki/site/ca.crt" \
        > "$tmp/status.txt" 2>&1 || { cat "$tmp/status.txt"; fail "status via https_proxy"; }
    grep -q "^site-1 " "$tmp/status.txt" || fail "status via https_proxy"
    kill -9 "$cpid"; wait "$cpid" 2>/dev/null
    for i in $(seq 1 300); do [ "$(grep -c '^closed ' "$tmp/proxy.log")" -ge 3 ] && break; sleep 0.1; done
    cat "$tmp/proxy.log"
    n=$(grep -c "^CONNECT 127.0.0.1:$port$" "$tmp/proxy.log")
    [ "$n" -ge 4 ] || fail "expected tunnels from doctor (2), the client and status, got $n"
    # the client's update (the tiny model, ~600 KB) went up a tunnel
    awk '/^closed / && $3 > 100000 {ok=1} END {exit !ok}' "$tmp/proxy.log" || fail "the update did not go through the proxy"
    grep -q "^closed .*tls=False" "$tmp/proxy.log" && fail "a tunnel did not start with a TLS handshake"
    grep -q "^closed .*tls=True" "$tmp/proxy.log" || fail "no TLS tunnel closed"
    ;;
operator)
    # issue 21 item 2: an operator certificate (not enrolled as a site) runs `fedfuse status`
    # and `ping`; it is no site: not even one named like a site is served Hello/GetTask, its
    # calls do not show the site as seen, and `fedfuse client` with it is refused.
    "$fedfuse" pki issue --site alice --role operator --ca "$tmp/pki/ca" --out "$tmp/pki/op" > /dev/null || fail "pki issue operator"
    "$fedfuse" pki issue --site site-1 --role operator --ca "$tmp/pki/ca" --out "$tmp/pki/op1" > /dev/null || fail "pki issue operator site-1"
    as_op() { # folder name command args...
        local d=$1 n=$2 c=$3; shift 3
        "$fedfuse" "$c" --coordinator 127.0.0.1:$port --cert "$tmp/pki/$d/$n.crt" \
            --key "$tmp/pki/$d/$n.key" --ca "$tmp/pki/$d/ca.crt" "$@"
    }
    as_op op alice status > "$tmp/status.txt" 2>&1 || { cat "$tmp/status.txt"; fail "status as operator"; }
    cat "$tmp/status.txt"
    grep -q "^consortium ops-test, run " "$tmp/status.txt" || fail "status: no consortium line"
    grep -Eq "^round [0-9]+ of 1, phase " "$tmp/status.txt" || fail "status: no round state"
    grep -Eq "^site-2 +never " "$tmp/status.txt" || fail "status: no site table"
    as_op op alice ping --count 1 > "$tmp/ping.txt" 2>&1 || { cat "$tmp/ping.txt"; fail "ping as operator"; }
    grep -q "^127.0.0.1:$port: consortium ops-test, round trip [0-9.]* ms" "$tmp/ping.txt" || fail "ping line"
    # an operator named like a site reads status but is not that site
    as_op op1 site-1 status > "$tmp/status1.txt" 2>&1 || { cat "$tmp/status1.txt"; fail "status as operator site-1"; }
    grep -Eq "^site-1 +never " "$tmp/status1.txt" || { cat "$tmp/status1.txt"; fail "an operator's call counted as site-1's"; }
    # the client node with the operator certificate: refused, naming the role
    sed -e "s|^cert: .*|cert: $tmp/pki/op1/site-1.crt|" -e "s|^key: .*|key: $tmp/pki/op1/site-1.key|" \
        "$tmp/site.yaml" > "$tmp/site-op.yaml"
    "$fedfuse" client --config "$tmp/site-op.yaml" > "$tmp/client.log" 2>&1
    rc=$?
    cat "$tmp/client.log"
    [ $rc -ne 0 ] || fail "fedfuse client with an operator certificate exited 0"
    grep -q "role operator" "$tmp/client.log" || fail "the client's refusal does not name the role"
    grep -Eq "refused (Hello|GetTask): 'site-1' holds a certificate of role operator: (Hello|GetTask) is served to sites only" "$tmp/coordinator.log" \
        || fail "the coordinator did not refuse the operator's site call"
    grep -Eq "uploaded|round 1: .* accepted" "$tmp/coordinator.log" && fail "the operator took part in the round"
    ;;
*) fail "unknown mode $mode" ;;
esac
echo "ok: $mode"
