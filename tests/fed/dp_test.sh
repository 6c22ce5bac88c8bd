#!/bin/bash
# Client-level (hospital-level) differential privacy in the federated round, with real
# coordinator and client processes over mutual TLS (label integration; docs/privacy.md).
#   central  DP-FedAvg, secure aggregation off, 3 sites, 2 rounds, local lr 1e-7 (the updates
#            are ~1e-7, so the model's change is the noise): every round has a `privacy` audit
#            entry; `fedfuse audit verify` recomputes ε and passes; an independent numpy RDP
#            computation from the entries' (q, σ, rounds, δ) gives the logged ε (rel. 1e-9);
#            the variance of (final − initial model) over the 156,163 parameters matches
#            Σ_r (σS)²/k² within 3 % (8 standard errors; it fails if the noise is missing,
#            mis-scaled or divided by the wrong count), its mean is 0 within 5 standard errors
#            and its kurtosis is 3 ± 0.1 (Gaussian); the sites' receipts carry the DP settings
#            and their policies required DP; an entry whose ε is edited fails verification
#            with a privacy.epsilon finding; rerun with site-3's policy requiring σ ≥ 2: it
#            refuses the task (naming min_noise_multiplier), the rounds go on without it.
#   ddg      the distributed discrete Gaussian under secure aggregation, 3 sites, 2 rounds:
#            the same checks (variance Σ_r survivors·σ_site²/k², the KLS21 bound recomputed
#            in numpy from the logged parameters); then the run again with site-2 killed after
#            it shared its keys in round 1: the sum holds 2 noise shares, the entry says
#            survivors 2 of 3, ε of that round is larger than with 3 and the log says why.
#   budget   σ = 1, δ = 1e-3, budget 6: rounds 1-2 spend 5.42, round 3 would reach 7.00; the
#            coordinator refuses it, stops with a message naming privacy.client.epsilon_budget,
#            rounds.csv and the audit log stop at round 2 (which still verifies); restarted on
#            its checkpoint it reloads the ledger and refuses round 3 again.
#   record   patient-level DP-SGD at each site (privacy.record: σ 1, C 1, δ 1e-3), 3 sites, 3
#            rounds of 3 steps at batch 16: each site's ledger (out_dir/privacy-ledger-<site>.json)
#            and each receipt's ε after round r equal an independent numpy/scipy RDP
#            computation (Poisson-sampled Gaussian, q = 16 / the site's training patients,
#            3r steps, dp_accounting's orders and series, improved conversion; rel. 1e-9) and
#            `fedfuse privacy epsilon`; `fedfuse audit verify --receipts` replays the 9 ledgers
#            and flags a receipt whose ε was edited. Then budget 2.0 (quorum 1): numpy predicts
#            which round first passes 2.0 at each site (sizes differ, so site-3 at round 2,
#            site-2 at round 3, site-1 never); each site refuses exactly that round with a
#            message naming the budget, trains no further, and no ledger passes 2.0. Then the
#            same run with site-1 killed at the start of round 2 and restarted: it resumes its
#            ledger of 1 round, and its final ε is that of 9 steps, not 6 (never reset).
#            Last, δ = 0.008: the two sites with more than 125 training patients refuse
#            (naming privacy.record.delta and their count), the third trains.
#   record_policy  the sites' own policies bound the record-level DP they run: plan budget
#            100; site-2 requires σ ≥ 2 and refuses every task (naming min_noise_multiplier),
#            site-3 caps ε at 2 and trains exactly the rounds numpy allows under 2 (its log
#            says it caps, its refusal names dp.max_epsilon), site-1 trains all 3 rounds.
#            Every refusal reaches the coordinator as a Decline: logged, audited (exact
#            decline entries), no phase waits for its deadline, the audit log verifies.
set -u
mode=$1 fedfuse=$2 src=$3
. "$(dirname "$0")/lib.sh"
fed_init dptest 5 '*/logs/*.log'

mkconf() { # rounds train_deadline secagg mechanism budget
    demo_secagg="enabled: $3" demo_run=dp demo_patients=200 demo_baselines=false \
        demo_plan="local_steps: 3, batch_size: 16, lr: 1e-7" mkdemo "$1" "$2" - <<EOC
privacy:
  client: {enabled: true, noise_multiplier: 1.0, clip_norm: 0.5, delta: 1e-3,
           epsilon_budget: $5, mechanism: $4}
EOC
}

mkrec() { # rounds budget min_sites train_deadline out: record-level DP-SGD at 3 sites
    cat > "$tmp/rec.yaml" <<EOC
run_name: dp
data: {dir: $tmp/data, sites: 3, patients: 200, seed: 3}
model_config: $src/configs/model-tiny.yaml
rounds: $1
seed: 5
plan: {local_steps: 3, batch_size: 16, lr: 1e-3}
min_sites: $3
deadlines: {train: $4, evaluate: 30}
secure_aggregation: {enabled: false}
baselines: false
timeout: 200
privacy:
  record: {enabled: true, noise_multiplier: 1.0, clip_norm: 1.0, delta: 1e-3, epsilon_budget: $2}
EOC
    "$fedfuse" simulate --config "$tmp/rec.yaml" --out "$5" > "$tmp/sim.txt" 2>&1 || { cat "$tmp/sim.txt"; fail "simulate $5"; }
}

verify_dp() { # out: the audit log verifies and its epsilon was recomputed
    verify "$1" "audit verify $1"
    grep -q "(recomputed by the verifier)" "$tmp/verify.txt" || fail "epsilon not recomputed"
}

# The independent checks: ε from the logged parameters (numpy), the noise's moments.
check() { # out expected_rounds
    "$fedfuse" model init --config "$src/configs/model-tiny.yaml" --seed 5 --out "$tmp/init.safetensors" > /dev/null || fail "model init"
    $py - "$1" "$2" "$tmp/init.safetensors" "$src/tests/fed" <<'EOP' || fail "privacy checks of $1"
import json, math, struct, sys
import numpy as np
out, rounds, init = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ents = [json.loads(l) for l in open(out + "/audit.jsonl")]
pv = [e["data"] for e in ents if e["event"] == "privacy"]
assert [p["round"] for p in pv] == list(range(1, rounds + 1)), [p["round"] for p in pv]
sys.path.insert(0, sys.argv[4])
from dp_oracle import orders, eps_from_rdp as eps
def ddg_rdp(r, a):  # KLS21 Prop. 14 / Eq. 17 (no L1 term), n = survivors
    c, g, b, s, d, n = (r["clip_norm"], r["ddg_gamma"], r["ddg_beta"], r["ddg_sigma"],
                        r["ddg_dim"], r["survivors"])
    t1 = (c + g * math.sqrt(d)) ** 2
    t2 = c * c + g * g * d / 4 + math.sqrt(2 * math.log(1 / b)) * g * (c + g * math.sqrt(d) / 2)
    delta2 = min(t1, t2) if b > 0 else t1
    tau = 10 * sum(math.exp(-2 * math.pi ** 2 * (s / g) ** 2 * k / (k + 1)) for k in range(1, n))
    sc = math.sqrt(delta2 / (n * s * s))
    return min(a * sc * sc / 2 + tau * d, a / 2 * (sc + math.sqrt(d) * tau) ** 2)
rdp = [0.0] * len(orders)
expect_var = 0.0
for p in pv:
    led = p["client_ledger"]["rounds"][-1]
    assert p["q"] == 1.0 and p["steps"] == 1 and led["round"] == p["round"], p
    for i, a in enumerate(orders):
        if p["mechanism"] == "gaussian":
            rdp[i] += a / (2 * p["noise_multiplier"] ** 2)
        else:
            rdp[i] += ddg_rdp(led, a)
    mine = eps(rdp, p["delta"])
    rel = abs(mine - p["epsilon_client"]) / mine
    print("round %d: %s, %d of %d sites' noise, noise std %.4g, epsilon logged %.10g, "
          "numpy %.10g (rel %.1e)" % (p["round"], p["mechanism"], p["survivors"], p["sites"],
                                      p["noise_std"], p["epsilon_client"], mine, rel))
    assert rel < 1e-9, rel
    expect_var += p["noise_std"] ** 2 / p["sites"] ** 2
def load(path):
    b = open(path, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    return {k: np.frombuffer(b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], np.float32)
            for k, v in h.items() if k != "__metadata__"}
a, b = load(out + "/model.safetensors"), load(init)
x = np.concatenate([a[k].astype(np.float64) - b[k] for k in sorted(b)])
var, mean, kurt = x.var(), x.mean(), ((x - x.mean()) ** 4).mean() / x.var() ** 2
print("model change over %d parameters: variance %.6g, expected %.6g (ratio %.4f), mean %.2e "
      "(%.1f standard errors), kurtosis %.3f" % (x.size, var, expect_var, var / expect_var, mean,
                                                  abs(mean) / math.sqrt(var / x.size), kurt))
assert abs(var / expect_var - 1) < 0.03
assert abs(mean) < 5 * math.sqrt(var / x.size)
assert abs(kurt - 3) < 0.1
r = json.load(open(out + "/receipts/site-1-round-0001.json"))
assert r["privacy"]["enabled"] and r["privacy"]["noise_multiplier"] == 1.0, r["privacy"]
print("receipt:", r["privacy"])
EOP
}

case $mode in
central)
    mkconf 2 60 false gaussian 20
    simulate_a
    verify_dp "$tmp/a"
    grep -q "required: true" "$tmp/a/config/policy-site-1.yaml" || fail "the site policy does not require DP"
    grep -q "updates clipped to norm 0.5" "$tmp/a/logs/coordinator.log" || fail "no clipping in the log"
    check "$tmp/a" 2
    # an edited epsilon: the recomputation disagrees (and the signature breaks)
    $py - "$tmp/a/audit.jsonl" "$tmp/tampered.jsonl" <<'EOP'
import json, re, sys
lines = open(sys.argv[1]).read().splitlines()
for i, l in enumerate(lines):
    e = json.loads(l)
    if e["event"] == "privacy" and e["data"]["round"] == 2:
        lines[i] = re.sub(r'"epsilon_client":[-+.0-9eE]+', '"epsilon_client":1.0', l, count=1)
        assert lines[i] != l
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
EOP
    if "$fedfuse" audit verify --log "$tmp/tampered.jsonl" --ca "$tmp/a/pki/ca.pem" > "$tmp/tv.txt" 2>&1; then
        cat "$tmp/tv.txt"; fail "a tampered epsilon verified"
    fi
    grep -q "privacy.epsilon" "$tmp/tv.txt" || { cat "$tmp/tv.txt"; fail "no privacy.epsilon finding"; }
    grep "privacy.epsilon" "$tmp/tv.txt"
    # the site policy's minimum DP settings: site-3 requires sigma >= 2 and refuses the task
    copy_b  # site-3 declines its task (Decline RPC): no deadline is waited on, none is shortened
    sed -i "s/min_noise_multiplier: [0-9.e+-]*/min_noise_multiplier: 2/" "$tmp/b/config/policy-site-3.yaml"
    run_b 60
    grep -q "task refused: policy: task noise multiplier 1 is below min_noise_multiplier 2" "$tmp/b/logs/site-3.log" || fail "site-3 did not refuse by its policy"
    ! grep -q "round 1: trained" "$tmp/b/logs/site-3.log" || fail "site-3 trained against its policy"
    grep -q "round 1: 2 updates clipped" "$tmp/b/logs/coordinator.log" || fail "round 1 should aggregate the 2 other sites"
    ;;
ddg)
    need_test_hooks
    mkconf 2 15 true distributed_discrete_gaussian 20  # the exact sampler: ~1 s per site for 262,144 coordinates
    simulate_a
    verify_dp "$tmp/a"
    grep -q "decoded the noisy sum of 3 sites" "$tmp/a/logs/coordinator.log" || fail "no ddg sum"
    ! grep -q "update from .* accepted" "$tmp/a/logs/coordinator.log" || fail "a plain update reached the coordinator"
    grep -q "ddg: update clipped to 0.5, noise share std" "$tmp/a/logs/site-1.log" || fail "site-1 added no noise share"
    check "$tmp/a" 2
    # again with site-2 killed after sharing its keys in round 1
    # (the dead site costs each phase its deadline: evaluation, which has no quorum, gets 4 s)
    copy_b -e "s/evaluate: 15,/evaluate: 4,/"
    grep -q "evaluate: 4," "$tmp/b/config/coordinator.yaml" || fail "evaluate deadline not shortened"
    start_coordinator
    sleep 0.5
    kill_site2_after_share
    wait_for $cpid 80 || fail "coordinator failed"
    grep -q "round 1: decoded the noisy sum of 2 sites" "$tmp/b/logs/coordinator.log" || fail "round 1 not summed with 2 survivors"
    grep -q "round 1: 1 of 3 sites' noise shares are missing from the secure sum" "$tmp/b/logs/coordinator.log" || fail "the drop-out's missing noise is not logged"
    verify_dp "$tmp/b"
    check "$tmp/b" 2
    $py - "$tmp/a/audit.jsonl" "$tmp/b/audit.jsonl" <<'EOP' || fail "drop-out accounting"
import json, sys
def first(p):
    return [json.loads(l)["data"] for l in open(p) if '"event":"privacy"' in l][0]
full, drop = first(sys.argv[1]), first(sys.argv[2])
assert full["survivors"] == 3 and drop["survivors"] == 2 and drop["sites"] == 3, (full, drop)
assert drop["epsilon_client"] > full["epsilon_client"], (drop["epsilon_client"], full["epsilon_client"])
print("round 1 epsilon: 3 survivors %.6f, 2 survivors %.6f" % (full["epsilon_client"], drop["epsilon_client"]))
EOP
    ;;
budget)
    mkconf 4 60 false gaussian 6
    if "$fedfuse" simulate --config "$tmp/demo.yaml" --out "$tmp/a" > "$tmp/sim.txt" 2>&1; then
        cat "$tmp/sim.txt"; fail "the run went past its budget"
    fi
    grep "privacy budget exhausted" "$tmp/a/logs/coordinator.log" | tail -1
    grep -q "privacy budget exhausted: round 3 refused, client-level epsilon would reach 6.99.*past privacy.client.epsilon_budget 6 (spent 5.42.. in 2 rounds)" \
        "$tmp/a/logs/coordinator.log" || fail "no clear budget message"
    [ "$(wc -l < "$tmp/a/rounds.csv")" = 3 ] || fail "rounds.csv should stop after round 2"
    [ "$(grep -c '"event":"privacy"' "$tmp/a/audit.jsonl")" = 2 ] || fail "privacy entries should stop after round 2"
    verify_dp "$tmp/a"
    # a restart resumes the ledger, not a fresh budget
    sed -i 's/^timeout.*//' "$tmp/a/config/coordinator.yaml"
    if "$fedfuse" coordinator --config "$tmp/a/config/coordinator.yaml" --no-progress > "$tmp/restart.log" 2>&1; then
        cat "$tmp/restart.log"; fail "the restarted coordinator ran past the budget"
    fi
    grep -q "resumed ledger of 2 rounds" "$tmp/restart.log" || { cat "$tmp/restart.log"; fail "ledger not resumed"; }
    grep -q "privacy budget exhausted: round 3 refused" "$tmp/restart.log" || { cat "$tmp/restart.log"; fail "round 3 not refused after the restart"; }
    ;;
record)
    need_test_hooks
    # the oracle: ε of the Poisson-sampled Gaussian after `steps` steps, from scratch
    cp "$src/tests/fed/dp_oracle.py" "$tmp/rdp.py"
    mkrec 3 100 2 60 "$tmp/a"
    grep -q "record-level DP-SGD, q" "$tmp/a/logs/site-1.log" || fail "site-1 did not run DP-SGD"
    $py - "$tmp/a" "$fedfuse" "$tmp/rdp.py" <<'EOP' || fail "record-level epsilon"
import json, math, subprocess, sys
out, fedfuse = sys.argv[1], sys.argv[2]
exec(open(sys.argv[3]).read())
for site in ["site-1", "site-2", "site-3"]:
    led = json.load(open("%s/privacy-ledger-%s.json" % (out, site)))
    assert [r["round"] for r in led["rounds"]] == [1, 2, 3], led["rounds"]
    for r in range(1, 4):
        rc = json.load(open("%s/receipts/%s-round-%04d.json" % (out, site, r)))
        n = rc["examples"]; q = 16.0 / n
        rr = led["rounds"][r - 1]
        assert abs(rr["q"] - q) < 1e-15 and rr["sigma"] == 1.0 and rr["steps"] == 3, rr
        mine = eps(q, 1.0, 3 * r, 1e-3)
        got = rc["privacy"]["record"]["epsilon"]
        cli = float(subprocess.check_output([fedfuse, "privacy", "epsilon", "--q", repr(q), "--sigma",
                    "1", "--steps", str(3 * r), "--delta", "1e-3"]).split()[1])
        rel = abs(got - mine) / mine
        print("%s round %d: %g patients, q %.6f, %d steps: epsilon receipt %.12g, numpy %.12g "
              "(rel %.1e), fedfuse privacy epsilon %.12g" % (site, r, n, q, 3 * r, got, mine, rel, cli))
        assert rel < 1e-9 and abs(cli - got) / got < 1e-9, (rel, cli)
    assert abs(led["epsilon"] - got) < 1e-12 * got
EOP
    "$fedfuse" audit verify --log "$tmp/a/audit.jsonl" --ca "$tmp/a/pki/ca.pem" --receipts "$tmp/a/receipts" \
        --certs "$tmp/a/pki/receipt-certs" > "$tmp/verify.txt" 2>&1 || { cat "$tmp/verify.txt"; fail "audit verify"; }
    grep "site ledgers" "$tmp/verify.txt"
    grep -q "record-level epsilon recomputed from the site ledgers of 9 receipts" "$tmp/verify.txt" || fail "receipts not replayed"
    # an edited receipt epsilon: the ledger replay disagrees
    sed -i -E 's/("record":\{"clip_norm":[^,]*,"delta":[^,]*,"enabled":true,"epsilon":)[-+.0-9eE]+/\11.0/' "$tmp/a/receipts/site-2-round-0002.json"
    grep -q '"epsilon":1.0,"epsilon_budget":100' "$tmp/a/receipts/site-2-round-0002.json" || fail "receipt not edited"
    if "$fedfuse" audit verify --log "$tmp/a/audit.jsonl" --ca "$tmp/a/pki/ca.pem" --receipts "$tmp/a/receipts" \
        --certs "$tmp/a/pki/receipt-certs" > "$tmp/tv.txt" 2>&1; then cat "$tmp/tv.txt"; fail "an edited receipt epsilon verified"; fi
    grep "receipt.privacy.epsilon" "$tmp/tv.txt" || { cat "$tmp/tv.txt"; fail "no receipt.privacy.epsilon finding"; }
    # budget 2.0: each site refuses the round numpy says would pass it
    mkrec 3 2.0 1 60 "$tmp/b"
    check_refusals() { # out
        $py - "$1" "$tmp/rdp.py" <<'EOP' || fail "record-level budget in $1"
import json, re, sys
out = sys.argv[1]
exec(open(sys.argv[2]).read())
refusing = 0
for site in ["site-1", "site-2", "site-3"]:
    n = json.load(open("%s/receipts/%s-round-0001.json" % (out, site)))["examples"]
    q = 16.0 / n
    allowed = [r for r in range(1, 4) if eps(q, 1.0, 3 * r, 1e-3) <= 2.0]
    first_bad = max(allowed) + 1 if max(allowed) < 3 else None
    log = "".join(open(f).read() for f in sorted(__import__("glob").glob("%s/logs/%s*.log" % (out, site))))
    trained = sorted(set(int(m) for m in re.findall(r"round (\d+): trained", log)))
    led = json.load(open("%s/privacy-ledger-%s.json" % (out, site)))
    print("%s: q %.6f, numpy allows rounds %s, trained %s, ledger epsilon %.6f" % (site, q, allowed, trained, led["epsilon"]))
    assert trained == allowed, (trained, allowed)
    assert [r["round"] for r in led["rounds"]] == allowed and led["epsilon"] <= 2.0
    assert abs(led["epsilon"] - eps(q, 1.0, 3 * len(allowed), 1e-3)) < 1e-9 * led["epsilon"]
    if first_bad:
        refusing += 1
        m = re.search(r"round %d: training refused by this site: .*" % first_bad, log)
        assert m and "privacy.record.epsilon_budget 2: round %d refused: record-level epsilon would reach" % first_bad in m.group(0), m
        assert len(re.findall(r"round %d: training refused" % first_bad, log)) == 1, "refusal not logged once"
        print("  " + m.group(0))
assert refusing >= 2, refusing
EOP
    }
    check_refusals "$tmp/b"
    grep -q "0 of 3 clients failed" "$tmp/sim.txt" || { cat "$tmp/sim.txt"; fail "a refusing client exited"; }
    # a restart keeps ε: the same run with site-1 killed when round 2's task arrives
    mkdir -p "$tmp/c/logs" "$tmp/c/config" && cp -r "$tmp/b/pki" "$tmp/c/pki"
    for f in "$tmp"/b/config/*.yaml; do sed -e "s#$tmp/b#$tmp/c#g" "$f" > "$tmp/c/config/$(basename "$f")"; done
    "$fedfuse" coordinator --config "$tmp/c/config/coordinator.yaml" --no-progress > "$tmp/c/logs/coordinator.log" 2>&1 &
    cpid=$!; pids+=($cpid)
    sleep 0.5
    for s in site-1 site-2 site-3; do
        kill_at=""; [ $s = site-1 ] && kill_at=task:2
        FEDFUSE_TEST_KILL_AT=$kill_at "$fedfuse" client --config "$tmp/c/config/site-$s.yaml" > "$tmp/c/logs/$s.log" 2>&1 &
        pids+=($!); [ $s = site-1 ] && s1=$!
    done
    wait "$s1" 2>/dev/null
    grep -q "SIGKILL at task of round 2" "$tmp/c/logs/site-1.log" || fail "site-1 was not killed at round 2"
    "$fedfuse" client --config "$tmp/c/config/site-site-1.yaml" > "$tmp/c/logs/site-1b.log" 2>&1 &
    pids+=($!)
    wait_for $cpid 90 || fail "coordinator (restart run) failed"
    grep "resumed the site's ledger" "$tmp/c/logs/site-1b.log" || fail "site-1 did not resume its ledger"
    grep -q "resumed the site's ledger of 1 rounds" "$tmp/c/logs/site-1b.log" || fail "site-1 resumed the wrong ledger"
    check_refusals "$tmp/c"
    # δ ≥ 1/patients is only known at a site: δ = 0.008 is refused by site-1 (165 training
    # patients) and site-2 (141), accepted by site-3 (116), which trains alone (quorum 1)
    sed -i 's/delta: 1e-3, epsilon_budget: 2.0/delta: 0.008, epsilon_budget: 2.0/; s/^rounds: 3/rounds: 1/' "$tmp/rec.yaml"
    "$fedfuse" simulate --config "$tmp/rec.yaml" --out "$tmp/d" > "$tmp/sim.txt" 2>&1 || { cat "$tmp/sim.txt"; fail "simulate delta"; }
    for s in site-1:165 site-2:141; do
        grep -q "round 1: training refused by this site: this site has ${s#*:} training patients: privacy.record.delta: 0.008 is not below 1/${s#*:} patients" \
            "$tmp/d/logs/${s%:*}.log" || fail "${s%:*} did not refuse delta 0.008"
    done
    grep -q "round 1: trained" "$tmp/d/logs/site-3.log" || fail "site-3 did not train at delta 0.008"
    grep -h "privacy.record.delta" "$tmp"/d/logs/site-*.log | cut -c1-200
    ;;
record_policy)
    # Each site's own policy bounds the record-level DP it runs (the plan cannot raise it):
    # site-1 accepts the plan (budget 100), site-2 requires σ ≥ 2 and refuses every task,
    # site-3 caps ε at 2 and stops at the round numpy says would pass 2.
    mkrec 3 100 1 60 "$tmp/a"
    grep -q "dp: {required: true, max_epsilon: 100," "$tmp/a/config/policy-site-1.yaml" || fail "simulate's site policy does not require record-level DP"
    copy_b -e "s/evaluate: 30/evaluate: 4/"  # were a decline lost, the wait stays short
    grep -q "evaluate: 4" "$tmp/b/config/coordinator.yaml" || fail "evaluate deadline not shortened"
    sed -i "s/min_noise_multiplier: [0-9.e+-]*/min_noise_multiplier: 2/" "$tmp/b/config/policy-site-2.yaml"
    sed -i "s/max_epsilon: [0-9.e+-]*/max_epsilon: 2/" "$tmp/b/config/policy-site-3.yaml"
    run_b 120
    grep -q "task refused: policy: privacy.record noise multiplier 1 is below min_noise_multiplier 2" "$tmp/b/logs/site-2.log" || fail "site-2 did not refuse by its policy"
    ! grep -q "round [0-9]*: trained" "$tmp/b/logs/site-2.log" || fail "site-2 trained against its policy"
    grep -q "the plan's epsilon_budget 100 is above this site's dp.max_epsilon: this site takes part until epsilon 2" "$tmp/b/logs/site-3.log" || fail "site-3 did not say it caps epsilon"
    # the refusals reach the coordinator (Decline): logged and audited with the site's
    # reason, the phases close without waiting for the silent site's deadline
    grep -q "round 1 phase train: site 'site-2' declined its task: task refused: policy: privacy.record noise multiplier 1 is below min_noise_multiplier 2" \
        "$tmp/b/logs/coordinator.log" || fail "the coordinator did not log site-2's decline"
    grep -q "round 2 phase train: site 'site-3' declined its task: training refused by this site: the site policy's dp.max_epsilon" \
        "$tmp/b/logs/coordinator.log" || fail "the coordinator did not log site-3's decline"
    ! grep -q "did not answer" "$tmp/b/logs/coordinator.log" || fail "a declining site was waited for until the deadline"
    $py -c 'import json, sys
d = [(e["data"]["round"], e["data"]["phase"], e["data"]["site"]) for e in map(json.loads, open(sys.argv[1])) if e["event"] == "decline"]
print("audited declines:", d)
# site-2 refuses the job itself (its policy refuses the plan): declined once, then gone (not
# selected, nor waited for in evaluate) until it says Hello again
assert [x for x in d if x[2] == "site-2"] == [(1, "train", "site-2")], d
assert [x for x in d if x[2] == "site-3"] == [(2, "train", "site-3"), (3, "train", "site-3")], d' "$tmp/b/audit.jsonl" || fail "decline entries in the audit log"
    verify "$tmp/b" "audit verify of the run with declines"
    cp "$src/tests/fed/dp_oracle.py" "$tmp/rdp.py"
    $py - "$tmp/b" "$tmp/rdp.py" <<'EOP' || fail "site policy caps of record-level epsilon"
import json, re, sys
out = sys.argv[1]
exec(open(sys.argv[2]).read())
for site, cap in [("site-1", 100.0), ("site-3", 2.0)]:
    n = json.load(open("%s/receipts/%s-round-0001.json" % (out, site)))["examples"]
    q = 16.0 / n
    allowed = [r for r in range(1, 4) if eps(q, 1.0, 3 * r, 1e-3) <= cap]
    log = open("%s/logs/%s.log" % (out, site)).read()
    trained = sorted(set(int(m) for m in re.findall(r"round (\d+): trained", log)))
    led = json.load(open("%s/privacy-ledger-%s.json" % (out, site)))
    print("%s: cap %g, q %.6f, numpy allows rounds %s, trained %s, ledger epsilon %.6f" % (site, cap, q, allowed, trained, led["epsilon"]))
    assert trained == allowed and [r["round"] for r in led["rounds"]] == allowed, (trained, allowed)
    assert led["epsilon"] <= cap
    if len(allowed) < 3:
        bad = len(allowed) + 1
        m = re.search(r"round %d: training refused by this site: .*" % bad, log)
        assert m and ("the site policy's dp.max_epsilon (stricter than privacy.record.epsilon_budget) 2: "
                      "round %d refused: record-level epsilon would reach" % bad) in m.group(0), m
        print("  " + m.group(0))
assert allowed != [1, 2, 3], "site-3's cap should stop it before round 3"
EOP
    ;;
esac
echo PASS
