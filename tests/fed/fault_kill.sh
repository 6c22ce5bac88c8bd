#!/bin/bash
# kill -9 in each phase of a round, real processes over mutual TLS on loopback (label
# integration). The kills land at exact places through the test hook FEDFUSE_TEST_KILL_AT=
# <point>:<round> (fed/src/testhook.c: the process sends itself SIGKILL there; the points are
# listed in docs/reliability.md). Every mode first runs the same consortium uninterrupted
# (fedfuse simulate, run a) and then by hand with the kills (run b).
#   client_plain   site-2 is killed in round 1 on its train task (before the download), in
#                  round 2 mid-download, in round 3 mid-upload (header sent), in round 4 on its
#                  evaluate task, and restarted after each of those rounds: each round ends with
#                  the 2 survivors (rounds.csv updates 2,2,2,3; 2 evaluations in round 4), the
#                  coordinator log and the audit log name site-2 as dropped in that phase, the
#                  audit log verifies.
#   client_secagg  the same with secure aggregation (3 sites, t=2): site-2 killed before its
#                  advertisement (round 1), before its shares (2), mid masked-input upload (3),
#                  before its unmask answer (4), on its evaluate task (5). Rounds 1-3 unmask
#                  the sum of 2 sites (round 3 by recovering site-2's pairwise masks), rounds 4-5
#                  the sum of all 3 (site-2's input arrived; its self mask is recovered).
#   secagg_below_t secure aggregation, t=2: site-2 and site-3 are both killed mid masked-input
#                  upload in round 2. The round fails closed: the coordinator exits 1 naming the
#                  phase, the counts and t; no aggregate entry for round 2, the checkpoint stays
#                  at round 1. Restarting the coordinator and the two sites with the same
#                  commands redoes round 2 and the final model equals run a's (sha256).
#   plain_below_quorum  secure aggregation off, on_quorum_fail: stop: site-2 and site-3 killed
#                  mid-upload in round 2; the coordinator stops at once naming the train phase
#                  and the counts; the same restart finishes with run a's model.
#   coord_plain    the coordinator is killed at select (round 1), mid-train (1, one update
#                  in), after aggregate (2), after the model update (2), after round 2's
#                  checkpoint was written but before the audit log recorded it (2: the
#                  restart discards it and redoes round 2), mid-evaluate (3), after the audit
#                  log recorded round 3 but before its checkpoint took its name (3: the
#                  restart keeps it and goes on with round 4), each time restarted with the
#                  same command: the final model equals run a's (sha256), the audit log
#                  verifies with 7 restart entries.
#   coord_secagg   the same with secure aggregation: killed after the first advertisement (1),
#                  the first shares (2), the first masked input (2), the first unmask answer
#                  (3), after aggregate (4).
set -u
mode=$1 fedfuse=$2 src=$3
. "$(dirname "$0")/lib.sh"
need_test_hooks
fed_init fedkill 8 'b/logs/*.log'

rounds_done() { [ -f "$tmp/b/rounds.csv" ] && echo $(($(wc -l < "$tmp/b/rounds.csv") - 1)) || echo 0; }

wait_rounds() { # n seconds
    for _ in $(seq 1 $(($2 * 10))); do [ "$(rounds_done)" -ge "$1" ] && return 0; sleep 0.1; done
    fail "round $1 did not finish within $2 s"
}

# Run a (uninterrupted), then run b's folder with the same consortium files.
setup() { # rounds deadline secagg
    demo_secagg="enabled: $3, threshold: 2" demo_run=t demo_patients=150 demo_baselines=false \
        demo_plan="local_steps: 5, batch_size: 16, lr: 0.002" mkdemo "$1" "$2"
    simulate_a
    copy_b
}

coordinator() { # [kill point]: starts the coordinator, sets cpid
    FEDFUSE_TEST_KILL_AT=${1:-} start_coordinator
}

declare -A cl
client() { # site [kill point]: starts a client, sets cl[site]
    FEDFUSE_TEST_KILL_AT=${2:-} start_client "$1"
    cl[$1]=$!
}

killed_at() { # pid log point: the process died of SIGKILL at the point
    wait_for "$1" 120; local st=$?
    [ $st = 137 ] || fail "process $1 ended with status $st, not SIGKILL (137) at $3"
    grep -q "SIGKILL at $3\$" "$2" || fail "no kill at $3 in $2"
    echo "killed at $3 ($(basename "$2"))"
}

csv_col() { # round column
    awk -F, -v r="$1" -v c="$2" 'NR > 1 && $1 == r { print $c }' "$tmp/b/rounds.csv" | tail -1
}

# The audit log's phase entry of (round, phase) lists site-2 as dropped.
audit_dropped() { # round phase site
    $py - "$tmp/b/audit.jsonl" "$@" <<'EOP' || fail "audit log: $3 not dropped in round $1 phase $2"
import json, sys
log, r, ph, site = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
es = [json.loads(l)["data"] for l in open(log) if json.loads(l).get("event") == "phase"]
assert any(e["round"] == r and e["phase"] == ph and site in e["dropped"] for e in es), es
EOP
}

case $mode in
client_plain|client_secagg)
    if [ $mode = client_plain ]; then
        setup 4 4 false
        kills=(task:1 download:2 upload:3 evaluate:4)
        phases=(train train train evaluate)
        want_updates=(2 2 2 3)
    else
        setup 5 4 true
        kills=(advertise_keys:1 share_keys:2 masked_input:3 unmask:4 evaluate:5)
        phases=(advertise_keys share_keys masked_input unmask evaluate)
        want_sum=(2 2 2 3 3)
    fi
    coordinator
    sleep 0.5
    client site-1; client site-3; client site-2 "${kills[0]}"
    for i in "${!kills[@]}"; do
        r=$((i + 1))
        killed_at "${cl[site-2]}" "$tmp/b/logs/site-2.log" "${kills[$i]/:/ of round }"
        wait_rounds $r 60
        [ $r -lt ${#kills[@]} ] && client site-2 "${kills[$((i + 1))]}"
    done
    wait_for $cpid 120 || fail "coordinator failed"
    for s in site-1 site-3; do wait_for "${cl[$s]}" 60 || fail "$s failed"; done
    [ "$(rounds_done)" = ${#kills[@]} ] || fail "not all ${#kills[@]} rounds finished"
    for i in "${!kills[@]}"; do
        r=$((i + 1)) ph=${phases[$i]}
        grep -q "round $r phase $ph: deadline of .* did not answer: site-2\$" "$tmp/b/logs/coordinator.log" ||
            fail "round $r: site-2 not named as missing in phase $ph"
        audit_dropped $r $ph site-2
        if [ $mode = client_plain ]; then
            u=$(csv_col $r 5)
            [ "$u" = "${want_updates[$i]}" ] || fail "round $r aggregated $u updates, want ${want_updates[$i]}"
        else
            grep -q "round $r: unmasked the sum of ${want_sum[$i]} sites" "$tmp/b/logs/coordinator.log" ||
                fail "round $r: not the sum of ${want_sum[$i]} sites"
            u=$(csv_col $r 5)
            [ "$u" = "${want_sum[$i]}" ] || fail "rounds.csv: round $r has $u updates, want ${want_sum[$i]}"
        fi
        echo "round $r: site-2 dropped in $ph, $(csv_col $r 5) updates aggregated, $(csv_col $r 10) evaluations"
    done
    [ "$(csv_col ${#kills[@]} 10)" = 2 ] || fail "the last round should pool 2 evaluations"
    verify "$tmp/b"
    ;;
secagg_below_t|plain_below_quorum)
    log=$tmp/b/logs/coordinator.log
    if [ $mode = secagg_below_t ]; then
        setup 3 4 true; point=masked_input; echo "max_retries: 1" >> "$tmp/b/config/coordinator.yaml"
    else
        setup 3 4 false; point=upload; echo "on_quorum_fail: stop" >> "$tmp/b/config/coordinator.yaml"
    fi
    coordinator
    sleep 0.5
    client site-1; client site-2 $point:2; client site-3 $point:2
    killed_at "${cl[site-2]}" "$tmp/b/logs/site-2.log" "$point of round 2"
    killed_at "${cl[site-3]}" "$tmp/b/logs/site-3.log" "$point of round 2"
    wait_for $cpid 120; st=$?
    [ $st = 1 ] || fail "coordinator exit status $st, want 1 (runtime failure)"
    if [ $mode = secagg_below_t ]; then
        grep "round 2 phase masked_input: 1 of 3 expected sites answered .*quorum is 2; missing: site-2, site-3; retrying" "$log" ||
            fail "no quorum failure naming the masked_input phase and the counts"
        grep "round 2: secure aggregation failed closed in phase masked_input: 1 of 3 sites answered, t=2" "$log" ||
            fail "no secure-aggregation fail-closed message"
        grep "fedfuse: error: round 2 phase advertise_keys: 1 of 3 .*no retries left" "$log" ||
            fail "the coordinator's last error does not name the phase and counts"
        ! grep -q "round 2: unmasked" "$log" || fail "round 2 was unmasked"
        want_qf='[(2, "masked_input"), (2, "advertise_keys")]'
    else
        grep "fedfuse: error: round 2 phase train: 1 of 3 expected sites answered .*quorum is 2; missing: site-2, site-3; on_quorum_fail is stop" "$log" ||
            fail "the coordinator's error does not name the train phase and the counts"
        want_qf='[(2, "train")]'
    fi
    [ "$(rounds_done)" = 1 ] || fail "rounds.csv has $(rounds_done) rounds, want 1"
    $py - "$tmp/b/audit.jsonl" "$want_qf" <<'EOP' || fail "audit log after the failed round"
import ast, json, sys
es = [json.loads(l) for l in open(sys.argv[1])]
agg = [e["data"]["round"] for e in es if e["event"] == "aggregate"]
ck = [e["data"]["round"] for e in es if e["event"] == "checkpoint"]
qf = [(e["data"]["round"], e["data"]["phase"]) for e in es if e["event"] == "quorum_fail"]
end = [e["data"]["status"] for e in es if e["event"] == "run_end"]
assert agg == [1] and ck == [1], (agg, ck)
assert qf == ast.literal_eval(sys.argv[2]), qf
assert end and "quorum is 2" in end[-1], end
print("audit: aggregate rounds", agg, "quorum_fail", qf)
EOP
    verify "$tmp/b"
    # the next run: the same commands; round 2 is redone with all three sites
    coordinator
    client site-2; client site-3
    wait_for $cpid 120 || fail "restarted coordinator failed"
    for s in site-1 site-2 site-3; do wait_for "${cl[$s]}" 60 || fail "$s failed"; done
    same_model "after failure"
    verify "$tmp/b"
    ;;
coord_plain|coord_secagg)
    if [ $mode = coord_plain ]; then
        setup 4 30 false
        kills=(select:1 train:1 aggregate:2 update:2 checkpoint_unlogged:2 evaluate:3 checkpoint:3)
    else
        setup 5 30 true
        kills=(advertise_keys:1 share_keys:2 masked_input:2 unmask:3 aggregate:4)
    fi
    coordinator "${kills[0]}"
    sleep 0.5
    client site-1; client site-2; client site-3
    for i in "${!kills[@]}"; do
        killed_at $cpid "$tmp/b/logs/coordinator.log" "${kills[$i]/:/ of round }"
        coordinator "${kills[$((i + 1))]:-}"
    done
    wait_for $cpid 180 || fail "restarted coordinator failed"
    for s in site-1 site-2 site-3; do wait_for "${cl[$s]}" 60 || fail "$s failed"; done
    if [ $mode = coord_plain ]; then
        grep -q "discarded the checkpoint of round 2 (.*): the run stopped before the audit log recorded the round, so the round is redone" \
            "$tmp/b/logs/coordinator.log" || fail "the unrecorded checkpoint of round 2 was not discarded"
        grep -q "completed the checkpoint of round 3: the run stopped after recording the round" \
            "$tmp/b/logs/coordinator.log" || fail "the recorded checkpoint of round 3 was not completed"
        $py -c 'import json, sys
r = [json.loads(l)["data"]["round"] for l in open(sys.argv[1]) if "\"event\":\"aggregate\"" in l]
assert r == [1, 2, 3, 4], r' "$tmp/b/audit.jsonl" || fail "the audit log should hold one aggregate entry per kept round"
    fi
    same_model restarted
    verify "$tmp/b"
    n=$(grep -c '"event":"restart"' "$tmp/b/audit.jsonl")
    [ "$n" = ${#kills[@]} ] || fail "$n restart entries in the audit log, want ${#kills[@]}"
    ;;
*)
    fail "unknown mode $mode"
    ;;
esac
echo PASS
