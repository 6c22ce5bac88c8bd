#!/bin/bash
# Integration tests of the federation processes (label integration).
#   simulate       fedfuse simulate end to end: every output file, the audit log verifies
#                  (fedfuse audit verify, exit 0, receipts included), rounds.csv has one line
#                  per round, and the pooled AUROC the coordinator computed from histograms
#                  matches `fedfuse eval`'s exact AUROC of the final model within 0.01 (10000-bin histogram ties);
#                  what the sites sent for their subgroups obeys their minimum cell size (10);
#                  every site long-polls with the poll timeout the coordinator sent (HelloReply).
#   restart        the coordinator is killed (SIGKILL) after round 2 of 4 and restarted with
#                  the same command: clients reconnect, the run finishes, the final model is
#                  bit-identical (sha256) to an uninterrupted run, the audit log verifies.
#   client_killed  one client is killed while the run is in progress: the rounds go on with
#                  the others (quorum 2), the coordinator names the missing site, the run ends.
#   client_hung    the same with a client that stays connected but never answers (SIGSTOP):
#                  each phase ends at its deadline, logged with the site name.
#   (both also call `fedfuse status` mid-run and check the round/phase line)
#   secagg_equiv   1 round with secure aggregation ON and the same run OFF: the two final
#                  models agree element-wise within the quantisation bound
#                  n·W/(scale·Σn) + 2^-23·(|a|+|b|) (numpy; n, scale, Σn from the coordinator
#                  log); `fedfuse audit verify` passes with the receipts, the log has a secagg
#                  entry per round with n, t, k, modulus_bits, clip_range and aggregate entries
#                  with secure_aggregation true, the receipts carry the same parameters.
#   plan_restart   the restart test under that plan, the coordinator killed at the boundary of
#                  stages 2 and 3: the final model is bit-identical to an uninterrupted run
#                  and every round_start names its round's stage.
#   plan           a three-stage plan (contrastive image-text, contrastive with EHR, supervised)
#                  with 25% of labels per site: every round runs, the audit log verifies and its
#                  round_start entries name the stage of each round in order.
#   secagg_killed  secure aggregation on, 3 sites, t=2: site-2 is killed (SIGKILL) after it
#                  shared its keys in round 1; the round completes by recovering site-2's
#                  masks from the survivors' shares (sum of 2 sites), every round finishes.
set -u
mode=$1 fedfuse=$2 src=$3
. "$(dirname "$0")/lib.sh"
fed_init fedtest 5 '*/logs/*.log'

# demo config: 3 sites, small cohort, short deadlines
mkconf() { # rounds baselines train_deadline [secagg]
    demo_secagg="enabled: ${4:-false}" demo_run=t demo_patients=200 demo_baselines=$2 \
        demo_plan="local_steps: 10, batch_size: 16, lr: 0.002" mkdemo "$1" "$3"
}

# the three-stage plan of the plan tests (tiny model with heads, 25% of labels)
mkplan() {
    cat > "$tmp/plan.yaml" <<'EOP'
local_steps: 6
batch_size: 16
stages:
  - {name: clip, objective: contrastive, trainable: [img., txt., proj., logit_scale], modalities: [img, txt], rounds: 1}
  - {name: ehr, objective: contrastive, trainable: [ehr., proj.ehr, logit_scale], modalities: [img, txt, ehr], rounds: 1}
  - {name: tune, objective: supervised, rounds: 2}
EOP
    sed -i "s#model-tiny.yaml#model-tiny-clip.yaml#" "$tmp/demo.yaml"
    printf 'plan_file: %s\nlabel_fraction: 0.25\n' "$tmp/plan.yaml" >> "$tmp/demo.yaml"
}

# every round_start of the audit log names the stage of its round (clip, ehr, tune, tune)
check_stages() { # out
    $py - "$1/audit.jsonl" <<'EOP' || fail "audit round_start stages"
import json, sys
want = {1: "clip", 2: "ehr", 3: "tune", 4: "tune"}
seen = {}
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e["event"] == "round_start":
        d = e["data"]
        assert d.get("stage") == want[d["round"]], (d["round"], d.get("stage"))
        seen[d["round"]] = d["stage"]
assert sorted(seen) == [1, 2, 3, 4], seen
print("stages", [seen[r] for r in sorted(seen)])
EOP
}

case $mode in
simulate)
    mkconf 3 false 60
    simulate_a
    for f in model.safetensors rounds.csv metrics.json report.html audit.jsonl pki/ca.pem \
             checkpoints/checkpoint.safetensors receipts/site-1-round-0003.json; do
        [ -s "$tmp/a/$f" ] || fail "missing $f"
    done
    [ "$(wc -l < "$tmp/a/rounds.csv")" = 4 ] || fail "rounds.csv should have header + 3 lines"
    ! ls "$tmp/a"/fine_tune-* 2>/dev/null || fail "fine-tuning ran without plan fine_tune"
    # every site long-polls with the poll timeout the coordinator sent in its HelloReply
    for s in site-1 site-2 site-3; do
        grep -q "site $s long-polls with wait_ms 20000 (poll timeout sent: 20000 ms)" \
            "$tmp/a/logs/coordinator.log" || fail "$s does not poll with the coordinator's poll timeout"
    done
    # the live view: the finished run's state, every round of rounds.csv with its pooled AUROC,
    # every site, no reload once done, nothing undefined
    $py - "$tmp/a/live.html" "$tmp/a/rounds.csv" "$tmp/a/logs/coordinator.log" <<'EOP' || fail "live.html"
import csv, html.parser, sys
page = open(sys.argv[1]).read()
coord_log = open(sys.argv[3]).read()
rows = list(csv.DictReader(open(sys.argv[2])))
class P(html.parser.HTMLParser):
    def __init__(s):
        super().__init__(); s.rows = []; s.refresh = False; s.td = False
    def handle_starttag(s, t, a):
        if t == "tr": s.rows.append([])
        s.td = t == "td"
        if t == "meta" and dict(a).get("http-equiv") == "refresh": s.refresh = True
    def handle_endtag(s, t):
        s.td = False
    def handle_data(s, d):
        if s.td and s.rows: s.rows[-1].append(d.strip())
p = P(); p.feed(page)
cells = [c for r in p.rows for c in r]
assert "finished" in page and not p.refresh, "a finished run's page must not reload"
for bad in ("NaN", "undefined", "null", "inf"):
    assert bad not in cells, bad
rounds = {r[0]: r for r in p.rows if len(r) == 8}
assert sorted(rounds) == sorted(r["round"] for r in rows), (sorted(rounds), p.rows)
for r in rows:
    assert rounds[r["round"]][6] == "%.3f" % float(r["pooled_auroc"]), (r, rounds[r["round"]])
    assert rounds[r["round"]][2] == r["updates"], (r, rounds[r["round"]])
for s in ("site-1", "site-2", "site-3"):
    assert s in [r[0] for r in p.rows if r], s
    # each site that fetched its DONE task shows as done (the finished page said "waiting");
    # one that did not within the coordinator's 10 s is named in its log
    state = [r[1] for r in p.rows if r and r[0] == s]
    assert state == ["done"] or "site %s did not fetch the end of the run" % s in coord_log, (s, state)
print("live.html: %d rounds, %d sites" % (len(rows), 3))
EOP
    verify "$tmp/a"
    # what the sites sent (the coordinator's fedeval.json): under the policy default (minimum
    # cell size 10, outcome counts too) every subgroup histogram has 0 or >= 10 patients,
    # positives and negatives, or is withheld (its name only), never one alone per attribute;
    # each site logs what it withheld; the report says "suppressed at the site"
    $py - "$tmp/a/fedeval.json" "$tmp/a/logs" <<'EOP' || fail "site-level suppression"
import glob, json, re, sys
fe = json.load(open(sys.argv[1]))
withheld = {}
for key in ("hists", "val_hists"):
    for site, arr in fe[key].items():
        for h in arr:
            per_attr = {}
            for s in h["slices"][1:]:
                a = per_attr.setdefault(s["attribute"], [0, 0])
                a[1] += 1
                if "suppressed" in s:
                    assert set(s) == {"attribute", "level", "suppressed", "min_cell_size"}, s
                    assert s["suppressed"] == 1 and s["min_cell_size"] == 10, s
                    a[0] += 1
                    continue
                P, N = sum(s["pos"]), sum(s["neg"])
                for c in (P + N, P, N):
                    assert c == 0 or c >= 10, (site, h["task"], s["attribute"], s["level"], P, N)
            for attr, (w, n) in per_attr.items():
                assert w != 1, (site, h["task"], attr)
                withheld[site, key] = withheld.get((site, key), 0) + w
assert sum(withheld.values()) > 0, "a 200-patient site with nothing withheld"
for site in fe["hists"]:
    log = open(glob.glob(sys.argv[2] + "/" + site + ".log")[0]).read()
    m = re.findall(r"round (\d+): (\d+) test and (\d+) validation subgroup histograms withheld", log)
    assert m, site + ": no withheld line"
    assert (int(m[-1][1]), int(m[-1][2])) == (withheld[site, "hists"], withheld[site, "val_hists"]), (site, m[-1])
print("site suppression:", sorted(withheld.items()))
EOP
    grep -q "suppressed at the site (n &lt; 10)" "$tmp/a/report.html" || fail "report does not say suppressed at the site"
    # one job hash: `job hash` on the simulated coordinator config prints the coordinator's line
    job=$("$fedfuse" job hash --config "$tmp/a/config/coordinator.yaml") || fail "job hash"
    grep -qx "$job" "$tmp/a/logs/coordinator.log" || fail "coordinator did not print '$job'"
    grep -q "${job#job }" "$tmp/a/config/policy-site-1.yaml" || fail "policy lacks ${job#job }"
    "$fedfuse" eval --config "$src/configs/model-tiny.yaml" --weights "$tmp/a/model.safetensors" \
        --data "$tmp/data/site-1" --data "$tmp/data/site-2" --data "$tmp/data/site-3" \
        --bootstrap 0 --out "$tmp/ev" > "$tmp/eval.txt" 2>&1 || fail "fedfuse eval"
    $py - "$tmp/a/metrics.json" "$tmp/ev/metrics.json" <<'EOP' || fail "federated AUROC differs from the exact one"
import json, sys
fed = json.load(open(sys.argv[1]))["auroc"]
exact = json.load(open(sys.argv[2]))["auroc"]
for t in ("admission", "icu", "critical"):
    d = abs(fed[t] - exact[t])
    print(t, fed[t], exact[t], d)
    assert d < 0.01, t  # histogram ties: the tiny model scores in a narrow band
EOP
    ;;
restart|plan_restart|client_killed|client_hung)
    if [ $mode = restart ] || [ $mode = plan_restart ]; then mkconf 4 false 30; else mkconf 4 false 4; fi
    [ $mode = plan_restart ] && mkplan
    simulate_a
    # run b: the same consortium files, its own out folder, the processes started by hand
    copy_b
    start_coordinator
    sleep 0.5
    cl=()
    for s in site-1 site-2 site-3; do start_client $s; cl+=($!); done
    if [ $mode = restart ] || [ $mode = plan_restart ]; then
        for i in $(seq 1 300); do [ -f "$tmp/b/rounds.csv" ] && [ "$(wc -l < "$tmp/b/rounds.csv")" -ge 3 ] && break; sleep 0.1; done
        kill -9 $cpid; wait $cpid 2>/dev/null
        echo "killed the coordinator after $(($(wc -l < "$tmp/b/rounds.csv") - 1)) rounds"
        start_coordinator
        wait_for $cpid 120 || fail "restarted coordinator failed"
        for p in "${cl[@]}"; do wait_for "$p" 60 || fail "a client failed"; done
        grep -q "resumed run" "$tmp/b/logs/coordinator.log" || fail "no resume in the log"
        same_model restarted
        verify "$tmp/b"
        grep -q '"event":"restart"' "$tmp/b/audit.jsonl" || fail "no restart entry in the audit log"
        [ $mode = plan_restart ] && check_stages "$tmp/b"
    else
        wait_log "round 1: trained" "$tmp/b/logs/site-2.log"
        if [ $mode = client_hung ]; then
            kill -STOP "${cl[1]}"   # alive, connected, never answers again
        else
            kill -9 "${cl[1]}"; wait "${cl[1]}" 2>/dev/null
        fi
        port=$(coord_port)
        fed_status > "$tmp/status.txt" 2>&1 || { cat "$tmp/status.txt"; fail "fedfuse status"; }
        grep -q "^round [1-4] of 4, phase " "$tmp/status.txt" || { cat "$tmp/status.txt"; fail "status output"; }
        wait_for $cpid 120 || fail "coordinator failed"
        grep -q "did not answer: site-2" "$tmp/b/logs/coordinator.log" || fail "site-2 not named as missing"
        [ "$(wc -l < "$tmp/b/rounds.csv")" = 5 ] || fail "not all 4 rounds finished"
        tail -1 "$tmp/b/rounds.csv" | awk -F, '$5 != 2 { exit 1 }' || fail "last round should aggregate 2 updates"
        verify "$tmp/b"
    fi
    ;;
secagg_equiv)
    mkconf 1 false 60 true
    cp "$tmp/demo.yaml" "$tmp/on.yaml"
    "$fedfuse" simulate --config "$tmp/on.yaml" --out "$tmp/on" > "$tmp/sim.txt" 2>&1 || { cat "$tmp/sim.txt"; fail "simulate (secagg on) exit"; }
    mkconf 1 false 60 false
    "$fedfuse" simulate --config "$tmp/demo.yaml" --out "$tmp/off" > "$tmp/sim2.txt" 2>&1 || { cat "$tmp/sim2.txt"; fail "simulate (secagg off) exit"; }
    grep -q "round 1: unmasked the sum of 3 sites" "$tmp/on/logs/coordinator.log" || fail "no unmasked sum in the log"
    grep -q "round 1: consistency_check message from site-1 accepted" "$tmp/on/logs/coordinator.log" || fail "no consistency check in the round"
    grep -q "round 1: survivor set signed" "$tmp/on/logs/site-2.log" || fail "site-2 did not sign the survivor set"
    ! grep -q "update from .* accepted" "$tmp/on/logs/coordinator.log" || fail "a plain update reached the coordinator"
    verify "$tmp/on"
    $py - "$tmp/on" "$tmp/off" <<'EOP' || fail "models differ beyond the quantisation bound"
import json, re, struct, sys
import numpy as np
def load(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    return {k: np.frombuffer(b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], np.float32)
            for k, v in h.items() if k != "__metadata__"}
on, off = sys.argv[1], sys.argv[2]
log = open(on + "/logs/coordinator.log").read()
n = int(re.search(r"secure aggregation n=(\d+)", log).group(1))
scale = 2.0 ** int(re.search(r"scale 2\^(\d+)", log).group(1))
total = int(re.search(r"unmasked the sum of \d+ sites \((\d+) examples\)", log).group(1))
W = 65536
bound = n * W / (scale * total)
a, b = load(on + "/model.safetensors"), load(off + "/model.safetensors")
worst = 0.0
for k in b:
    x, y = a[k].astype(np.float64), b[k].astype(np.float64)
    slack = bound + 2.0 ** -23 * (np.abs(x) + np.abs(y))
    worst = max(worst, float(np.max(np.abs(x - y) / slack)))
    assert np.all(np.abs(x - y) <= slack), k
d = max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) for k in b)
print("max |on - off| = %.3g, quantisation bound %.3g, worst ratio to slack %.3f" % (d, bound, worst))
entries = [json.loads(l) for l in open(on + "/audit.jsonl")]
sa = [e["data"] for e in entries if e.get("event") == "secagg"]
ag = [e["data"] for e in entries if e.get("event") == "aggregate"]
assert len(sa) == 1 and all(k in sa[0] for k in ("n", "t", "k", "modulus_bits", "clip_range")), sa
assert ag and all(x["secure_aggregation"] is True for x in ag), ag
r = json.load(open(on + "/receipts/site-1-round-0001.json"))
assert r["secagg"] == sa[0], (r["secagg"], sa[0])
print("audit:", sa[0])
EOP
    ;;
plan)
    mkconf 4 false 60
    mkplan
    simulate_a
    [ "$(wc -l < "$tmp/a/rounds.csv")" = 5 ] || fail "rounds.csv should have header + 4 lines"
    grep -q "label_fraction: 0.25" "$tmp/a/config/site-site-1.yaml" || fail "label_fraction not in the site config"
    verify "$tmp/a"
    check_stages "$tmp/a"
    ;;
finetune)
    # FedAvg + local fine-tuning on the real nodes (plan fine_tune): after the last round
    # every site fine-tunes the final model it is sent with the done message, evaluates the
    # global and its own copy on its test rows, and keeps both files; the coordinator's model
    # is the plain FedAvg one
    mkconf 2 false 60
    printf 'local_steps: 10\nbatch_size: 16\noptimizer: {lr: 0.002}\nfine_tune: {steps: 15, lr: 0.001}\n' > "$tmp/plan.yaml"
    printf 'plan_file: %s\n' "$tmp/plan.yaml" >> "$tmp/demo.yaml"
    simulate_a
    for s in site-1 site-2 site-3; do
        grep -q "$s: fine-tuned the final model 15 local steps" "$tmp/a/logs/$s.log" ||
            fail "$s did not fine-tune"
        [ -s "$tmp/a/model-finetuned-$s.safetensors" ] || fail "no fine-tuned model of $s"
        ! cmp -s "$tmp/a/model-finetuned-$s.safetensors" "$tmp/a/model.safetensors" ||
            fail "$s: the fine-tuned copy is the global model"
        $py - "$tmp/a/fine_tune-$s.json" "$s" <<'EOP' || fail "fine_tune-$s.json"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["site"] == sys.argv[2] and j["steps"] == 15 and abs(j["lr"] - 0.001) < 1e-9, j
assert j["final_round"] == 2, j
for k in ("global", "fine_tuned"):
    assert j[k]["split"] == "test" and j[k]["tasks"], j[k]
assert j["global"] != j["fine_tuned"], "the two evaluations are identical"
EOP
    done
    verify "$tmp/a"
    ;;
local)
    # per-site layers on the real nodes (strategy.local: [head.]): every site trains and
    # evaluates its own head, sends no change of it, and keeps the final global model with
    # its own head; the coordinator's head never moves. site-2 is killed after its first
    # round and restarted: it goes on with its own saved head
    mkconf 3 false 60
    simulate_a
    copy_b -e 's/^strategy: {name: fedavg, server_lr: \([0-9.e+-]*\)}/strategy: {name: fedavg, server_lr: \1, local: [head.]}/'
    grep -q "local: \[head.\]" "$tmp/b/config/coordinator.yaml" || fail "strategy.local not set"
    start_coordinator
    sleep 0.5
    cl=()
    for s in site-1 site-2 site-3; do start_client $s; cl+=($!); done
    wait_log "round 1: trained" "$tmp/b/logs/site-2.log"
    kill -9 "${cl[1]}"; wait "${cl[1]}" 2>/dev/null
    start_client site-2; cl[1]=$!
    wait_for $cpid 180 || fail "coordinator failed"
    for p in "${cl[@]}"; do wait_for "$p" 60 || fail "a client failed"; done
    for s in site-1 site-2 site-3; do
        grep -q "stay at this site (strategy.local)" "$tmp/b/logs/$s.log" || fail "$s: no local layers"
    done
    grep -q "restored this site's own local layers from" "$tmp/b/logs/site-2.log" ||
        fail "the restarted site-2 did not restore its own layers"
    $py - "$tmp/b" "$tmp/a/model.safetensors" <<'EOP' || fail "per-site layers"
import json, struct, sys
def load(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    head = json.loads(b[8:8 + n])
    return {k: b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]
            for k, v in head.items() if k != "__metadata__"}
g = load(sys.argv[1] + "/model.safetensors")
a = load(sys.argv[2])
sites = [load(f"{sys.argv[1]}/model-personal-site-{i}.safetensors") for i in (1, 2, 3)]
heads = [k for k in g if k.startswith("head.")]
assert heads, sorted(g)
for k in g:
    for i, s in enumerate(sites):
        if k in heads:
            assert s[k] != g[k], f"site-{i + 1}'s {k} is the global one"
        else:
            assert s[k] == g[k], f"site-{i + 1}'s shared {k} is not the global model's"
for k in heads:
    assert len({s[k] for s in sites}) == 3, f"{k}: two sites share their own values"
    assert g[k] != a[k], f"{k}: the global head is run a's trained one"
print("heads", heads)
EOP
    ;;
secagg_killed)
    need_test_hooks
    mkconf 3 false 4 true
    simulate_a
    copy_b
    start_coordinator
    sleep 0.5
    kill_site2_after_share
    wait_for $cpid 80 || fail "coordinator failed"
    grep -q "round 1: unmasked the sum of 2 sites" "$tmp/b/logs/coordinator.log" || fail "round 1 not recovered with 2 survivors"
    grep -q "masked_input: deadline.*did not answer: site-2" "$tmp/b/logs/coordinator.log" || fail "site-2 not named as dropped"
    [ "$(wc -l < "$tmp/b/rounds.csv")" = 4 ] || fail "not all 3 rounds finished"
    verify "$tmp/b"
    ;;
esac
echo PASS
