#!/usr/bin/env bash
# Build an emulated arm64 (aarch64) Debian bookworm root filesystem with a Python venv
# holding numpy/pillow/click, so the pure-numpy coding code can be run under qemu-user
# to check that integer arithmetic is bit-identical on ARM64 (see run.sh).
#
# Idempotent: every step checks whether it is already done, so a second run is fast.
# Needs root (debootstrap, chroot, binfmt_misc). torch and constriction are NOT installed
# (constriction has no linux-aarch64 wheel).
#
# Overridable via env: ROOT, MIRROR, SECURITY_MIRROR, SUITE, NUMPY_VERSION,
# PILLOW_VERSION, CLICK_VERSION, EXTRA_PIP (space-separated extra pip requirements).
set -euo pipefail

ROOT=${ROOT:-/work/arm64-root}
SUITE=${SUITE:-bookworm}
# Same Debian mirror the host's apt uses (only package registries are reachable).
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# Pinned to the host's versions so results are comparable.
NUMPY_VERSION=${NUMPY_VERSION:-2.4.6}
PILLOW_VERSION=${PILLOW_VERSION:-13.0.0}
CLICK_VERSION=${CLICK_VERSION:-8.4.0}
EXTRA_PIP=${EXTRA_PIP:-}

log() { echo "[arm64-setup] $*" >&2; }
[ "$(id -u)" = 0 ] || { log "must run as root"; exit 1; }

# 1. Host tools: qemu-user-static (the emulator) and debootstrap.
if ! command -v qemu-aarch64-static >/dev/null || ! command -v debootstrap >/dev/null; then
    log "installing qemu-user-static debootstrap on the host"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user-static debootstrap
fi

# 2. binfmt_misc: lets the kernel run aarch64 ELF files through qemu transparently, which
#    debootstrap's second stage needs (dpkg runs maintainer scripts = many execve's).
#    Debian ships the entry (flags OPF; F = interpreter opened now, so it works in chroots).
#    The registration is kernel state: lost on reboot (run.sh re-registers it).
BINFMT=/proc/sys/fs/binfmt_misc
if [ ! -e "$BINFMT/qemu-aarch64" ]; then
    [ -e "$BINFMT/register" ] || mount -t binfmt_misc binfmt_misc "$BINFMT"
    log "registering qemu-aarch64 in binfmt_misc"
    cat /usr/lib/binfmt.d/qemu-aarch64.conf > "$BINFMT/register"
fi
[ "$(head -n1 "$BINFMT/qemu-aarch64")" = enabled ] || echo 1 > "$BINFMT/qemu-aarch64"

# 3. Root filesystem. First stage (unpack, on the host) unless already done; the
#    second stage (configure, emulated) deletes $ROOT/debootstrap when it finishes.
if [ ! -x "$ROOT/usr/bin/dpkg" ] && [ ! -d "$ROOT/debootstrap" ]; then
    log "debootstrap first stage -> $ROOT"
    mkdir -p "$ROOT"
    debootstrap --arch=arm64 --foreign --variant=minbase "$SUITE" "$ROOT" "$MIRROR"
fi
# A copy of the emulator inside the rootfs: not needed with the F flag, but it lets
# `chroot $ROOT /usr/bin/qemu-aarch64-static ...` work without binfmt as well.
cmp -s /usr/bin/qemu-aarch64-static "$ROOT/usr/bin/qemu-aarch64-static" \
    || cp /usr/bin/qemu-aarch64-static "$ROOT/usr/bin/qemu-aarch64-static"
if [ -d "$ROOT/debootstrap" ]; then
    log "debootstrap second stage (emulated, ~1 min)"
    chroot "$ROOT" /debootstrap/debootstrap --second-stage
fi

# Run a command inside the rootfs with a clean environment and /proc mounted, in a
# private mount namespace (the mount disappears when the command exits).
in_root() {
    unshare --mount --propagation private \
        sh -c 'mount -t proc proc "$0/proc" && exec chroot "$0" /usr/bin/env -i \
               HOME=/root LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
               PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 \
               PATH=/opt/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"' "$ROOT" "$@"
}

# 4. apt sources (main + updates + security), DNS, and the host's extra CA certificates
#    (HTTPS egress here goes through a CA that pip inside the rootfs must trust).
SOURCES="deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main"
[ "$(cat "$ROOT/etc/apt/sources.list" 2>/dev/null)" = "$SOURCES" ] \
    || printf '%s\n' "$SOURCES" > "$ROOT/etc/apt/sources.list"
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
ca_changed=0
mkdir -p "$ROOT/usr/local/share/ca-certificates"
for crt in /usr/local/share/ca-certificates/*.crt; do
    [ -e "$crt" ] || continue
    dst="$ROOT/usr/local/share/ca-certificates/$(basename "$crt")"
    cmp -s "$crt" "$dst" || { cp "$crt" "$dst"; ca_changed=1; }
done

# 5. Python 3.11 from bookworm, with venv and pip.
PKGS="python3 python3-venv python3-pip ca-certificates"
# shellcheck disable=SC2086
if [ "$(in_root dpkg-query -W -f='${Status}\n' $PKGS 2>/dev/null | grep -c 'install ok installed')" != 4 ]; then
    log "apt-get install python3 python3-venv python3-pip (emulated, ~1.5 min)"
    in_root apt-get update -q
    # shellcheck disable=SC2086
    in_root apt-get install -y -q --no-install-recommends $PKGS
    in_root apt-get clean
    ca_changed=1
fi
[ "$ca_changed" = 0 ] || in_root update-ca-certificates >/dev/null

# 6. The venv and the pinned wheels (binary only: building numpy under emulation would take hours).
[ -x "$ROOT/opt/venv/bin/python" ] || { log "creating /opt/venv"; in_root python3 -m venv /opt/venv; }
REQS="numpy==$NUMPY_VERSION pillow==$PILLOW_VERSION click==$CLICK_VERSION $EXTRA_PIP"
# shellcheck disable=SC2086
if ! in_root python -c '
import sys
from importlib.metadata import version, PackageNotFoundError
for r in sys.argv[1:]:
    name, _, want = r.partition("==")
    try:
        have = version(name)
    except PackageNotFoundError:
        sys.exit(1)
    if want and have != want:
        sys.exit(1)' $REQS; then
    log "pip install $REQS"
    # shellcheck disable=SC2086
    in_root pip install --only-binary=:all: $REQS
fi

in_root python -c 'import platform, sys, numpy, PIL, importlib.metadata as m
print("[arm64-setup] ok:", platform.machine(), "python", sys.version.split()[0], "numpy", numpy.__version__,
      "pillow", PIL.__version__, "click", m.version("click"))'
