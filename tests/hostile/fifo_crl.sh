#!/usr/bin/env bash
# Hostile review items 9 and 6, against the real binary.
# 9: a FIFO in place of a site data file must not hang `fedfuse data check` (it blocked in
#    open() forever): refused at once as "not a regular file". A watchdog (not a timing bound
#    on the result) only turns a hang into a failure instead of a stuck test.
# 6: `fedfuse pki crl` re-signs the revocation list without revoking anyone: same revoked
#    serials, CRL number + 1, nextUpdate later (checked with the OpenSSL CLI).
set -u
ff=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
src=$(cd "$(dirname "$0")/../.." && pwd)

# ---- item 9: FIFO --------------------------------------------------------------------------
cp -r "$src/configs/example-site" "$tmp/site"
rm "$tmp/site/notes.csv"
mkfifo "$tmp/site/notes.csv"
timeout 60 "$ff" data check "$tmp/site" > "$tmp/check.txt" 2>&1
rc=$?
[ $rc -ne 124 ] || fail "data check hung on a FIFO (killed by the watchdog)"
grep -q "not a regular file" "$tmp/check.txt" || { cat "$tmp/check.txt"; fail "FIFO not refused as not a regular file"; }

# ---- item 6: CRL renewal -------------------------------------------------------------------
"$ff" pki init --out "$tmp/ca" --name hostile > /dev/null || fail "pki init"
"$ff" pki issue --site site-1 --ca "$tmp/ca" --out "$tmp/s1" > /dev/null || fail "issue"
"$ff" pki revoke --ca "$tmp/ca" --cert "$tmp/s1/site-1.crt" > /dev/null || fail "revoke"
num() { openssl crl -in "$tmp/ca/crl.pem" -noout -crlnumber | sed 's/.*=//'; }
next() { date -d "$(openssl crl -in "$tmp/ca/crl.pem" -noout -nextupdate | sed 's/.*=//')" +%s; }
serials() { openssl crl -in "$tmp/ca/crl.pem" -noout -text | grep "Serial Number" | sort; }
n0=$(num); s0=$(serials); t0=$(next)
sleep 1
"$ff" pki crl --ca "$tmp/ca" > "$tmp/crl.txt" 2>&1 || { cat "$tmp/crl.txt"; fail "pki crl"; }
openssl crl -in "$tmp/ca/crl.pem" -CAfile "$tmp/ca/ca.crt" -noout 2>&1 | grep -q "verify OK" || fail "renewed CRL does not verify"
[ "$(serials)" = "$s0" ] || fail "renewal changed the revoked serials"
[ -n "$s0" ] || fail "the revoked serial is missing"
[ $((16#$(num))) -eq $((16#$n0 + 1)) ] || fail "CRL number $(num) is not $n0 + 1"
[ "$(next)" -gt "$t0" ] || fail "nextUpdate did not move forward"
echo "PASS"
