#!/usr/bin/env bash
# Everything the tests need, then the tests: `fuse-tests/run.sh` from the repo root.
#
# As root it installs what is missing (fuse3, attr, git, util-linux tools; podman, runc,
# uidmap, skopeo for the interoperability tests; runc and busybox-static for the container
# tests; docker-registry, umoci, apache2-utils, curl, pigz for the registry tests; gcc,
# make, autotools, perl's prove and
# openssl to build and run pjdfstest), lets ordinary users reach /dev/fuse, enables
# user_allow_other, and creates the unprivileged test user `layerfs-test`. Extra arguments
# go to `cargo test` (e.g. `fuse-tests/run.sh overlay::` to run one group).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*"; }

if [ "$(id -u)" = 0 ]; then
    missing=()
    command -v fusermount3 >/dev/null || missing+=(fuse3)
    command -v setfattr >/dev/null || missing+=(attr)
    command -v git >/dev/null || missing+=(git)
    command -v setpriv >/dev/null || missing+=(util-linux)
    command -v runuser >/dev/null || missing+=(util-linux)
    command -v bc >/dev/null || missing+=(bc)
    # Real clients and peers the tests drive (each test says why it skips without them).
    command -v podman >/dev/null || missing+=(podman)
    command -v runc >/dev/null || missing+=(runc)
    command -v newuidmap >/dev/null || missing+=(uidmap)
    command -v skopeo >/dev/null || missing+=(skopeo)
    command -v tar-split >/dev/null || missing+=(tar-split)
    # The container tests (containers::) build their image from a static busybox.
    [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || missing+=(busybox-static)
    # The registry tests (registry::): a real registry (CNCF distribution 2.8), umoci for the
    # reference rootfs, htpasswd for Basic auth, curl to check the servers, pigz for the bench.
    command -v docker-registry >/dev/null || missing+=(docker-registry)
    command -v umoci >/dev/null || missing+=(umoci)
    command -v htpasswd >/dev/null || missing+=(apache2-utils)
    command -v curl >/dev/null || missing+=(curl)
    command -v pigz >/dev/null || missing+=(pigz)
    # pjdfstest (overlay::pjdfs) is built from source and driven by perl's prove; its
    # scripts make names with openssl.
    command -v autoreconf >/dev/null || missing+=(autoconf)
    command -v automake >/dev/null || missing+=(automake)
    command -v cc >/dev/null || missing+=(gcc)
    [ -e /usr/include/stdio.h ] || missing+=(libc6-dev)
    command -v make >/dev/null || missing+=(make)
    command -v prove >/dev/null || missing+=(perl)
    command -v openssl >/dev/null || missing+=(openssl)
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq </dev/null
        apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
    fi
    [ -e /dev/fuse ] || mknod -m 0666 /dev/fuse c 10 229
    # Debian's udev rule makes /dev/fuse 0666; containers often leave it 0600.
    chmod 0666 /dev/fuse
    if [ -f /etc/fuse.conf ] && ! grep -q '^user_allow_other' /etc/fuse.conf; then
        echo user_allow_other >> /etc/fuse.conf
    fi
    # A group left from an earlier, removed user would make a plain useradd fail.
    if ! id layerfs-test >/dev/null 2>&1; then
        group=""
        getent group layerfs-test >/dev/null && group="-g layerfs-test"
        useradd --create-home --shell /bin/bash $group layerfs-test
    fi
    # Rootless podman needs subordinate ids for the test user.
    grep -q '^layerfs-test:' /etc/subuid 2>/dev/null || usermod --add-subuids 200000-265535 layerfs-test
    grep -q '^layerfs-test:' /etc/subgid 2>/dev/null || usermod --add-subgids 200000-265535 layerfs-test
    modprobe overlay 2>/dev/null || true
else
    say "not root: using what is installed (fuse3, attr and git are needed)"
fi

if [ -d ../shared/fixtures ]; then
    say "fixtures: ../shared/fixtures"
else
    say "no ../shared beside the repo: fixture tests will print why they skip"
fi

# FUSE over io_uring (the fuse module's enable_uring; off by default, root switches it): the
# suite runs with it on, then the union filesystem's tests again over the device fd alone.
# The setting is put back as it was.
URING=/sys/module/fuse/parameters/enable_uring
if [ "$(id -u)" = 0 ] && [ -w "$URING" ]; then
    was=$(cat "$URING")
    trap 'echo "$was" > "$URING" || true' EXIT
    echo Y > "$URING" || say "cannot switch FUSE over io_uring on: the device fd only"
    say "cargo test (release), FUSE over io_uring $(cat "$URING")"
    cargo test --release --locked "$@"
    if [ $# -eq 0 ]; then
        echo N > "$URING"
        say "cargo test (release) overlay::, FUSE over io_uring off"
        cargo test --release --locked --test fuse-tests -- overlay::
    fi
    exit 0
fi
say "cargo test (release)"
exec cargo test --release --locked "$@"
