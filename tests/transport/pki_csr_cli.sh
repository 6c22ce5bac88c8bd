#!/usr/bin/env bash
# `fedfuse pki csr` at the site and `fedfuse pki sign` at the CA, end to end through the CLI,
# with the openssl tool as the oracle: the request's self-signature, the signed certificate's
# chain and purpose, and that the key generated at the site is the one certified. Refusals
# exit 2 with a message that says why, and write no certificate.
# Usage: pki_csr_cli.sh FEDFUSE
set -euo pipefail
ff=$1
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*"; exit 1; }
# expect CODE TEXT -- CMD...: CMD exits CODE and prints TEXT.
expect() {
  local code=$1 text=$2; shift 3
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  [[ $rc -eq $code ]] || fail "exit $rc (want $code): $* -> $out"
  [[ $out == *"$text"* ]] || fail "no '$text' in: $out"
}

"$ff" pki init --out ca --name consortium-x >/dev/null
# At the hospital: key and request; the key is 0600 and stays here.
expect 0 "hospital-a.csr" -- "$ff" pki csr --site hospital-a --out site
[[ $(stat -c %a site/hospital-a.key) == 600 ]] || fail "key mode $(stat -c %a site/hospital-a.key)"
openssl req -verify -noout -in site/hospital-a.csr 2>&1 | grep -q 'self-signature verify OK' \
  || fail "openssl does not verify the request"
[[ $(openssl req -noout -subject -in site/hospital-a.csr) == "subject=CN = hospital-a" ]] \
  || fail "request subject"
expect 2 "refusing to overwrite a site key" -- "$ff" pki csr --site hospital-a --out site
# At the CA: only the request travels.
mkdir inbox && cp site/hospital-a.csr inbox/
expect 0 "CN=hospital-a" -- "$ff" pki sign --csr inbox/hospital-a.csr --ca ca --out reply --site hospital-a
[[ ! -e reply/hospital-a.key ]] || fail "the CA wrote a key"
openssl verify -purpose sslclient -CAfile ca/ca.crt reply/hospital-a.crt >/dev/null \
  || fail "openssl verify (client)"
! openssl verify -purpose sslserver -CAfile ca/ca.crt reply/hospital-a.crt >/dev/null 2>&1 \
  || fail "a site certificate passed as a TLS server"
cmp -s reply/ca.crt ca/ca.crt || fail "ca.crt not shipped with the certificate"
# The certified key is the site's: same public key in the certificate and the site key.
[[ $(openssl x509 -in reply/hospital-a.crt -noout -pubkey) == \
   $(openssl pkey -in site/hospital-a.key -pubout) ]] || fail "certificate carries another key"
expect 0 "valid, CN=hospital-a" -- "$ff" pki check --ca-cert ca/ca.crt --crl ca/crl.pem --cert reply/hospital-a.crt
# Lifetime: 730 days for a site, --days honoured.
end=$(date -d "$(openssl x509 -in reply/hospital-a.crt -noout -enddate | cut -d= -f2)" +%s)
(( (end - $(date +%s)) / 86400 >= 729 && (end - $(date +%s)) / 86400 <= 730 )) || fail "site lifetime"
expect 0 "signed" -- "$ff" pki sign --csr inbox/hospital-a.csr --ca ca --out short --days 30
end=$(date -d "$(openssl x509 -in short/hospital-a.crt -noout -enddate | cut -d= -f2)" +%s)
(( (end - $(date +%s)) / 86400 >= 29 && (end - $(date +%s)) / 86400 <= 30 )) || fail "--days 30"
# A coordinator through a request: server and client purposes, its host name.
"$ff" pki csr --site coord --out c >/dev/null
expect 0 "role coordinator" -- "$ff" pki sign --csr c/coord.csr --ca ca --out c --role coordinator --san coord.example.org
openssl verify -purpose sslserver -CAfile ca/ca.crt c/coord.crt >/dev/null || fail "coordinator purpose"
openssl x509 -in c/coord.crt -noout -ext subjectAltName | grep -q 'DNS:coord.example.org' || fail "coordinator SAN"

# Refusals (exit 2, nothing written).
openssl req -in site/hospital-a.csr -outform DER -out a.der
/usr/bin/python3 -c "import sys; d=bytearray(open('a.der','rb').read()); d[-1]^=1; open('bad.der','wb').write(d)"
openssl req -inform DER -in bad.der -out bad.csr 2>/dev/null
! openssl req -verify -noout -in bad.csr 2>&1 | grep -q 'verify OK' || fail "openssl accepts the altered request"
expect 2 "signature does not verify" -- "$ff" pki sign --csr bad.csr --ca ca --out r1
openssl genpkey -algorithm ed25519 -out m.key 2>/dev/null
openssl req -new -key m.key -subj '/O=Evil/CN=hospital-m' -out m.csr
expect 2 "subject must be exactly CN=<site name>" -- "$ff" pki sign --csr m.csr --ca ca --out r2
openssl req -new -key m.key -subj '/CN=hospital m' -out n.csr
expect 2 "not a site name" -- "$ff" pki sign --csr n.csr --ca ca --out r3
expect 2 "not --site 'hospital-b'" -- "$ff" pki sign --csr inbox/hospital-a.csr --ca ca --out r4 --site hospital-b
expect 2 "" -- "$ff" pki sign --csr reply/hospital-a.crt --ca ca --out r5
for d in r1 r2 r3 r4 r5; do [[ ! -e $d ]] || fail "$d written for a refused request"; done
echo "ok"
