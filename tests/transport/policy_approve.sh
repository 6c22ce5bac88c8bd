#!/bin/bash
# `fedfuse policy approve --policy P --job HASH`: the hash lands in accepted_jobs of a block
# list, a flow list and a file without the key; comments, other keys and the file mode stay;
# a second approval changes nothing; a malformed hash is exit 2 with the file untouched.
# The oracle is `fedfuse policy check` (the loader) plus python's view of the text.
set -u
fedfuse=$1 src=$2
tmp=$(mktemp -d /tmp/policy_approve.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
h1=$(printf 'ab%.0s' {1..32}) h2=$(printf '0c%.0s' {1..32})

cp "$src/configs/site-policy.example.yaml" "$tmp/block.yaml"
chmod 0640 "$tmp/block.yaml"
"$fedfuse" policy approve --policy "$tmp/block.yaml" --job "${h1^^}" > "$tmp/out" || fail "approve block"
grep -q "^approved job $h1 in" "$tmp/out" || fail "approve output: $(cat "$tmp/out")"
"$fedfuse" policy check --policy "$tmp/block.yaml" | grep -q "  job $h1" || fail "not in check"
[ "$(stat -c %a "$tmp/block.yaml")" = 640 ] || fail "mode changed"
python3 - "$src/configs/site-policy.example.yaml" "$tmp/block.yaml" "$h1" <<'EOP' || fail "edit"
import sys
a = open(sys.argv[1]).read().splitlines()
b = open(sys.argv[2]).read().splitlines()
added = [l for l in b if l not in a]
assert added == ["  - " + sys.argv[3]], added     # one line, in the list's own indentation
assert [l for l in a if l not in b] == [], "a line was lost"
EOP
cp "$tmp/block.yaml" "$tmp/before"
"$fedfuse" policy approve --policy "$tmp/block.yaml" --job "$h1" | grep -q "^already approved" || fail "second approve"
cmp -s "$tmp/before" "$tmp/block.yaml" || fail "second approve changed the file"

printf 'site: a  # flow\naccepted_jobs: [%s]\nmax_rounds: 5\n' "$h2" > "$tmp/flow.yaml"
"$fedfuse" policy approve --policy "$tmp/flow.yaml" --job "$h1" > /dev/null || fail "approve flow"
[ "$(sed -n 2p "$tmp/flow.yaml")" = "accepted_jobs: [$h2, $h1]" ] || fail "flow: $(cat "$tmp/flow.yaml")"
"$fedfuse" policy check --policy "$tmp/flow.yaml" | grep -q "rounds <= 5" || fail "flow check"

"$fedfuse" policy approve --policy "$tmp/flow.yaml" --job 1234 2> "$tmp/err"
[ $? = 2 ] || fail "bad hash exit"
grep -q "is not a job hash" "$tmp/err" || fail "bad hash message"
echo ok
