#!/bin/bash
# Start-up checks of a hospital's client config (docs/operations.md §4): each mistake stops the
# node at once, exit 2, naming FILE:LINE:COL: key: reason; relative paths are relative to the
# config file (the node is started from another folder); a certificate about to expire is
# warned about. No coordinator is needed: every check happens before the first call.
set -u
fedfuse=$1 src=$2
tmp=$(mktemp -d /tmp/config_checks.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
cd "$tmp" || exit 1
"$fedfuse" pki init --out ca --name t > /dev/null || fail "pki init"
"$fedfuse" pki issue --site hospital-a --ca ca --out h > /dev/null || fail "pki issue"
"$fedfuse" pki issue --site hospital-b --ca ca --out soon --days 10 > /dev/null || fail "pki issue 10 days"
mkdir data site
cp "$src/configs/site-policy.example.yaml" site/policy.yaml
sed -i 's/^site: .*/site: hospital-a/' site/policy.yaml
cat > site/client.yaml <<EOC
site: hospital-a
coordinator: 127.0.0.1:1
cert: ../h/hospital-a.crt
key: ../h/hospital-a.key
ca: ../ca/ca.crt
data: ../data
model_config: $src/configs/model-tiny.yaml
policy: policy.yaml
give_up_after: 0.1
EOC
cd / || exit 1
# expect EXIT MESSAGE [sed expression on a copy of the config]
expect() {
    local want=$1 msg=$2
    cp "$tmp/site/client.yaml" "$tmp/site/c.yaml"
    [ -n "${3:-}" ] && sed -i "$3" "$tmp/site/c.yaml"
    "$fedfuse" client --config "$tmp/site/c.yaml" > "$tmp/out" 2>&1
    local rc=$?
    [ $rc = "$want" ] || { cat "$tmp/out"; fail "exit $rc, expected $want for: $msg"; }
    grep -qF -- "$msg" "$tmp/out" || { cat "$tmp/out"; fail "no '$msg'"; }
}
c=$tmp/site/c.yaml
expect 2 "$c:2:1: coordinator: '127.0.0.1' is not host:port" 's/^coordinator: .*/coordinator: 127.0.0.1/'
expect 2 "$c:8:1: policy: cannot open '$tmp/site/nope.yaml': No such file or directory" 's/^policy: .*/policy: nope.yaml/'
expect 2 "$c:6:1: data: cannot open '$tmp/site/../nodata'" 's#^data: .*#data: ../nodata#'
chmod 0644 "$tmp/h/hospital-a.key"
expect 2 "$c:4:1: key: private key '$tmp/site/../h/hospital-a.key' is readable by others (mode 0644)"
chmod 0600 "$tmp/h/hospital-a.key"
expect 2 "$c:1:1: site: 'hospital-c' is not the name in the certificate" 's/^site: .*/site: hospital-c/'
# all paths fine (relative to the config, not to /): the node gets as far as reading its
# data folder, an empty one here
expect 2 "$tmp/site/../data/patients.csv: cannot open"
# a certificate that ends within 30 days is warned about (and does not stop the node)
sed -i 's/^site: .*/site: hospital-b/' "$tmp/site/policy.yaml"
expect 2 "cert: certificate $tmp/site/../soon/hospital-b.crt (CN=hospital-b) expires in 10 day(s)" \
    's#^site: .*#site: hospital-b#; s#h/hospital-a#soon/hospital-b#'
echo ok
