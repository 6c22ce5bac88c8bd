# Shared by the hostile tests that run a real coordinator (fd_flood.sh, crl_expiry.sh);
# sourced. The caller sets ff (the fedfuse binary), src (the source tree), tmp, and fail().

# hostile_consortium NAME: $tmp/pki (CA, coordinator, operator alice), a one-site
# $tmp/consortium.yaml and $tmp/coordinator.yaml; extra config lines come on stdin.
hostile_consortium() {
    p=$tmp/pki
    "$ff" pki init --out "$p/ca" --name "$1" > /dev/null || fail "pki init"
    "$ff" pki issue --site coordinator --role coordinator --ca "$p/ca" --out "$p/coord" > /dev/null || fail "issue coordinator"
    "$ff" pki issue --site alice --role operator --ca "$p/ca" --out "$p/op" > /dev/null || fail "issue operator"
    cat > "$tmp/consortium.yaml" <<EOC
consortium: $1
ca: $p/ca/ca.crt
crl: $p/ca/crl.pem
sites:
  - name: site-1
EOC
    cat > "$tmp/coordinator.yaml" <<EOC
run_name: $1
rounds: 1
listen: 127.0.0.1:0
consortium: $tmp/consortium.yaml
model_config: $src/configs/model-tiny.yaml
checkpoint_dir: $tmp/out/checkpoints
out_dir: $tmp/out
deadlines: {train: 100000, evaluate: 100000}
tls: {cert: $p/coord/coordinator.crt, key: $p/coord/coordinator.key}
EOC
    cat >> "$tmp/coordinator.yaml"
}

# hostile_port: waits (bounded) for the coordinator's "listening on port" line; sets port.
hostile_port() {
    for _ in $(seq 600); do grep -q "listening on port" "$tmp/coordinator.log" && break; sleep 0.1; done
    port=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$tmp/coordinator.log" | head -1)
    [ -n "$port" ] || fail "coordinator did not start"
}
