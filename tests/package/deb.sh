#!/usr/bin/env bash
# Builds the .deb with `cpack -G DEB` from the build folder into a temp folder and checks it:
# the files the issue names are in it, Depends carries the runtime libraries (dpkg-shlibdeps),
# postinst creates the fedfuse system user, lintian reports no errors, and `fedfuse --version`
# runs from a throw-away root made by `dpkg -x`.
# A build with the fault-injection hooks (the test trees) must be refused by cpack; the package
# checked is then the hook-free Release tree that scripts/test builds (build-release/).
#   deb.sh BUILD_DIR VERSION RELEASE_DIR
set -euo pipefail
build=$1
version=$2
release=${3:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

if grep -aq FEDFUSE_TEST_ "$build/fedfuse"; then
    if (cd "$tmp" && cpack -G DEB --config "$build/CPackConfig.cmake" -B "$tmp/hooks" \
            >"$tmp/hooks.log" 2>&1); then
        fail "cpack packaged a build with the fault-injection hooks"
    fi
    grep -q "fault-injection test hooks (FF_TEST_HOOKS=ON)" "$tmp/hooks.log" ||
        { cat "$tmp/hooks.log"; fail "cpack's refusal does not say why"; }
    ! ls "$tmp"/hooks/fedfuse_*.deb >/dev/null 2>&1 || fail "a .deb was left behind"
    echo "ok: cpack refuses the hook-enabled build in $build"
    [[ -n $release && -f $release/CPackConfig.cmake && -x $release/fedfuse ]] || {
        echo "SKIP: no hook-free Release tree at '$release' (scripts/test builds build-release/)"
        exit 77
    }
    build=$release
fi
grep -aq FEDFUSE_TEST_ "$build/fedfuse" && fail "$build/fedfuse carries the test hooks"

(cd "$tmp" && cpack -G DEB --config "$build/CPackConfig.cmake" -B "$tmp/out" >"$tmp/cpack.log" 2>&1) ||
    { cat "$tmp/cpack.log"; fail "cpack -G DEB failed"; }
deb=$(ls "$tmp"/out/fedfuse_*.deb)
echo "built $(basename "$deb") ($(stat -c %s "$deb") bytes)"

dpkg-deb -c "$deb" | awk '{print $NF}' | sed 's|^\./|/|' > "$tmp/files"
for f in /usr/bin/fedfuse /lib/systemd/system/fedfuse-client.service \
         /lib/systemd/system/fedfuse-coordinator.service \
         /usr/share/doc/fedfuse/examples/site.yaml /usr/share/doc/fedfuse/examples/coordinator.yaml \
         /usr/share/doc/fedfuse/examples/site-policy.example.yaml \
         /usr/share/doc/fedfuse/examples/consortium.example.yaml \
         /usr/share/man/man1/fedfuse.1.gz /usr/share/man/man1/fedfuse-doctor.1.gz \
         /usr/share/man/man1/fedfuse-client.1.gz /usr/share/doc/fedfuse/copyright; do
    grep -qx "$f" "$tmp/files" || fail "$f is not in the package"
done

depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for lib in libc6 libssl3 libgrpc29 libprotobuf-c1 libopenblas0 libyaml-0-2 libjansson4 \
           libpng16-16 libcsv3 zlib1g adduser; do
    grep -Eq "(^|, )$lib( |,|$)" <<<"$depends" || fail "Depends lacks $lib"
done
[[ $(dpkg-deb -f "$deb" Version) == "$version" ]] || fail "Version is not $version"

dpkg-deb -e "$deb" "$tmp/control"
grep -q 'adduser --system --group' "$tmp/control/postinst" || fail "postinst makes no system user"
[[ $(stat -c %a "$tmp/control/postinst") == 755 ]] || fail "postinst is not 0755"

if ! command -v lintian >/dev/null; then fail "lintian is not installed (scripts/install-deps --test)"; fi
lintian --tag-display-limit 0 "$deb" >"$tmp/lintian.log" 2>&1 || true
cat "$tmp/lintian.log"
if grep -q '^E: ' "$tmp/lintian.log"; then fail "lintian reports errors"; fi

root=$tmp/root
dpkg -x "$deb" "$root"
out=$("$root/usr/bin/fedfuse" --version)
[[ $out == "fedfuse $version" ]] || fail "fedfuse --version printed '$out'"
grep -q '^ExecStart=/usr/bin/fedfuse client --config /etc/fedfuse/client.yaml' \
    "$root/lib/systemd/system/fedfuse-client.service" || fail "client unit does not run /usr/bin/fedfuse"
zcat "$root/usr/share/man/man1/fedfuse-client.1.gz" | grep -q 'Long-polls the coordinator' ||
    fail "fedfuse-client(1) is not the --help text"
echo "ok: $out from $root/usr/bin/fedfuse"
