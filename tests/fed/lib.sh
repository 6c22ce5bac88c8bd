# Shared helpers of the federation test scripts (fed_test.sh, dp_test.sh, fault_kill.sh,
# fault_net.sh); sourced, not run. The caller sets fedfuse and src (mode=$1 fedfuse=$2 src=$3)
# and calls fed_init first. Run a is `fedfuse simulate` into $tmp/a; run b is the same
# consortium started by hand in $tmp/b.

# fed_init name tail_lines log_glob...: the temp folder, the cleanup trap and what fail()
# prints (the last tail_lines of each log matching the globs, relative to $tmp and expanded
# when it fails).
fed_init() {
    py=/usr/bin/python3
    tmp=$(mktemp -d "/tmp/$1.XXXXXX")
    fail_tail=$2; shift 2
    fail_logs=("$@")
    pids=()
    mnt=${mnt:-}
    trap cleanup EXIT
}

# need_test_hooks: the caller drives the fault-injection hooks (FEDFUSE_TEST_KILL_AT,
# FEDFUSE_TEST_HOLD_AFTER_SHARE), compiled into fedfuse only with -DFF_TEST_HOOKS=ON (ctest
# passes FF_TEST_HOOKS=ON/OFF): without them the test is skipped (77) and says why.
need_test_hooks() {
    [ "${FF_TEST_HOOKS:-OFF}" = ON ] && return 0
    echo "SKIPPED: $mode needs the fault-injection hooks; configure with -DFF_TEST_HOOKS=ON" \
         "(scripts/build and scripts/test do)"
    exit 77
}

cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    [ -n "$mnt" ] && umount -l "$mnt" 2>/dev/null
    [ -n "${KEEP:-}" ] || rm -rf "$tmp"
}

fail() {
    echo "FAIL: $*"
    local g f
    for g in "${fail_logs[@]}"; do
        for f in "$tmp"/$g; do [ -f "$f" ] && { echo "== $f"; tail -"$fail_tail" "$f"; }; done
    done
    exit 1
}

# demo.yaml of 3 sites; what differs between the scripts comes in variables (demo_secagg,
# demo_run, demo_patients, demo_plan, demo_baselines), extra lines on stdin when given.
mkdemo() { # rounds deadline [-]
    cat > "$tmp/demo.yaml" <<EOC
secure_aggregation: {$demo_secagg}
run_name: $demo_run
data: {dir: $tmp/data, sites: 3, patients: $demo_patients, seed: 3}
model_config: $src/configs/model-tiny.yaml
rounds: $1
seed: 5
plan: {$demo_plan}
min_sites: 2
deadlines: {train: $2, evaluate: $2}
baselines: $demo_baselines
timeout: 200
EOC
    [ "${3:-}" = - ] && cat >> "$tmp/demo.yaml"
    return 0
}

simulate_a() { # run a: fedfuse simulate of demo.yaml
    "$fedfuse" simulate --config "$tmp/demo.yaml" --out "$tmp/a" > "$tmp/sim.txt" 2>&1 || { cat "$tmp/sim.txt"; fail "simulate exit"; }
}

copy_b() { # [sed -e expressions...]: run b's folder with run a's consortium files
    mkdir -p "$tmp/b/logs" "$tmp/b/config" && cp -r "$tmp/a/pki" "$tmp/b/pki"
    local f
    for f in "$tmp"/a/config/*.yaml; do sed -e "s#$tmp/a#$tmp/b#g" "$@" "$f" > "$tmp/b/config/$(basename "$f")"; done
}

coord_port() { grep -o "127.0.0.1:[0-9]*" "$tmp/b/config/coordinator.yaml" | cut -d: -f2; }

start_coordinator() { # run b's coordinator (log appended), sets cpid
    "$fedfuse" coordinator --config "$tmp/b/config/coordinator.yaml" --no-progress >> "$tmp/b/logs/coordinator.log" 2>&1 &
    cpid=$!; pids+=($cpid)
}

start_client() { # site [wrapper...]: run b's client of site (log appended); $! is its pid
    local s=$1; shift
    "$@" "$fedfuse" client --config "$tmp/b/config/site-$s.yaml" >> "$tmp/b/logs/$s.log" 2>&1 &
    pids+=($!)
}

run_b() { # seconds: run b's coordinator and its three clients until the coordinator exits
    start_coordinator
    sleep 0.5
    local s
    for s in site-1 site-2 site-3; do start_client $s; done
    wait_for $cpid "$1" || fail "coordinator of run b failed"
}

fed_status() { # [wrapper...]: `fedfuse status` as site-1 against run b's coordinator on $port
    "$@" "$fedfuse" status --coordinator 127.0.0.1:$port --cert "$tmp/b/pki/sites/site-1.crt" \
        --key "$tmp/b/pki/sites/site-1.key" --ca "$tmp/b/pki/ca.pem" --server-name coordinator
}

wait_for() { # pid seconds -> the process's exit status
    local i=0
    while kill -0 "$1" 2>/dev/null; do
        sleep 0.2; i=$((i + 1))
        [ $i -gt $(($2 * 5)) ] && fail "process $1 still running after $2 s"
    done
    wait "$1"
}

wait_log() { # pattern file: up to 30 s for the line to appear (the caller checks it)
    local i
    for i in $(seq 1 300); do grep -q "$1" "$2" 2>/dev/null && break; sleep 0.1; done
}

# The three clients of run b, site-2 held 30 s after it shared its keys in round 1 and killed
# there (SIGKILL); sets cl.
kill_site2_after_share() {
    local s hold
    cl=()
    for s in site-1 site-2 site-3; do
        hold=""; [ $s = site-2 ] && hold=30
        start_client $s env FEDFUSE_TEST_HOLD_AFTER_SHARE=$hold; cl+=($!)
    done
    wait_log "round 1: keys shared" "$tmp/b/logs/site-2.log"
    grep -q "round 1: keys shared" "$tmp/b/logs/site-2.log" || fail "site-2 never shared its keys"
    kill -9 "${cl[1]}"; wait "${cl[1]}" 2>/dev/null
}

verify() { # out [message]: fedfuse audit verify with the receipts
    "$fedfuse" audit verify --log "$1/audit.jsonl" --ca "$1/pki/ca.pem" --receipts "$1/receipts" \
        --certs "$1/pki/receipt-certs" > "$tmp/verify.txt" 2>&1 || { cat "$tmp/verify.txt"; fail "${2:-audit verify}"; }
}

same_model() { # label: run b's final model is bit-identical to run a's
    local a b
    a=$(sha256sum < "$tmp/a/model.safetensors") b=$(sha256sum < "$tmp/b/model.safetensors")
    echo "uninterrupted $a"; printf '%-13s %s\n' "$1" "$b"
    [ "$a" = "$b" ] || fail "final models differ"
}
