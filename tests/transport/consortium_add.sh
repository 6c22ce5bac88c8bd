#!/bin/bash
# `fedfuse consortium add --consortium F | --config C --cert X.crt [--contact T]`: a hospital
# enrolled in place (docs/operations.md, sections 3 and 15). Its certificate is checked first:
# another CA's, a revoked one and an operator's are refused (exit 2, the file untouched). A
# block list gets one `- name:` item (and its contact line) in the list's own indentation,
# comments and mode kept; a flow list gets `{name: ...}`; a second add changes nothing.
# The oracle is the loader (a second `consortium add` reads the file) and python's view.
set -u
fedfuse=$1 src=$2
tmp=$(mktemp -d /tmp/consortium_add.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
cd "$tmp" || exit 1
"$fedfuse" pki init --out ca --name t > /dev/null || fail "pki init"
"$fedfuse" pki init --out other --name other > /dev/null || fail "pki init other"
for s in hospital-d hospital-e hospital-f; do
    "$fedfuse" pki issue --site $s --ca ca --out certs > /dev/null || fail "issue $s"
done
"$fedfuse" pki issue --site intruder --ca other --out certs > /dev/null || fail "issue other"
"$fedfuse" pki issue --site alice --role operator --ca ca --out certs > /dev/null || fail "issue op"
"$fedfuse" pki revoke --ca ca --cert certs/hospital-f.crt > /dev/null || fail "revoke"
mkdir pki && cp ca/ca.crt ca/crl.pem pki/

cp "$src/configs/consortium.example.yaml" block.yaml
chmod 0640 block.yaml
"$fedfuse" consortium add --consortium block.yaml --cert certs/hospital-d.crt \
    --contact 'IT "desk" <it@d.example>' > out || fail "add: $(cat out)"
grep -q "^enrolled hospital-d in block.yaml" out || fail "add output: $(cat out)"
[ "$(stat -c %a block.yaml)" = 640 ] || fail "mode changed"
python3 - "$src/configs/consortium.example.yaml" block.yaml <<'EOP' || fail "edit"
import sys
a = open(sys.argv[1]).read().splitlines()
b = open(sys.argv[2]).read().splitlines()
assert b[:len(a)] == a, "a line changed"
assert b[len(a):] == ['  - name: hospital-d', '    contact: "IT \\"desk\\" <it@d.example>"'], b[len(a):]
EOP
cp block.yaml before
"$fedfuse" consortium add --consortium block.yaml --cert certs/hospital-d.crt > out || fail "again"
grep -q "^hospital-d is already enrolled" out || fail "second add: $(cat out)"
cmp -s before block.yaml || fail "second add changed the file"

refused() { # cert what: exit 2 naming what, file untouched
    "$fedfuse" consortium add --consortium block.yaml --cert "$1" > out 2>&1
    [ $? = 2 ] || fail "$1: exit $? (want 2): $(cat out)"
    grep -q "$2" out || fail "$1: no '$2' in: $(cat out)"
    cmp -s before block.yaml || fail "$1: the file changed"
}
refused certs/intruder.crt "certificate rejected"
refused certs/hospital-f.crt "certificate revoked"
refused certs/alice.crt "role operator, not site"

printf 'consortium: t\nca: pki/ca.crt\nsites: [{name: hospital-a}]   # flow\n' > flow.yaml
printf 'consortium: flow.yaml\nrun_name: x\nrounds: 1\n' > coordinator.yaml
"$fedfuse" consortium add --config coordinator.yaml --cert certs/hospital-e.crt > out || fail "--config: $(cat out)"
grep -qx 'sites: \[{name: hospital-a}, {name: hospital-e}\]   # flow' flow.yaml || fail "flow: $(cat flow.yaml)"
echo "consortium add: ok"
