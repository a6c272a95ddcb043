#!/usr/bin/env bash
# Run a command on emulated arm64 (aarch64) Linux: inside the rootfs made by setup.sh,
# with this repo visible at /repo (cwd mapped to the same place under /repo) and the
# venv's python (numpy, pillow, click; no torch/constriction) first on PATH.
#
#   bench/arm64/run.sh python -c 'import platform; print(platform.machine())'
#   bench/arm64/run.sh env FOO=1 python script.py      # extra env vars: use `env`
#   bench/arm64/run.sh                                 # interactive bash
#
# Env knobs:
#   ROOT=/work/arm64-root  rootfs made by setup.sh
#   REPO=<this repo>       host folder shown at /repo
#   ARM64_CPU=<model>      qemu CPU model (QEMU_CPU). Default "max" (has SVE, dotprod, ...).
#                          e.g. cortex-a72 (plain NEON) or neoverse-n1 (Graviton2-like)
#                          to exercise other numpy/OpenBLAS dispatch paths.
#   ARM64_COPY=1           copy the repo into $ROOT/repo instead of bind-mounting it
#                          (automatic when mounting is not permitted; writes then stay
#                          in $ROOT/repo and are NOT reflected in the host repo).
#   ARM64_NO_BINFMT=1      do not use binfmt_misc; run the emulator explicitly (automatic
#                          when binfmt cannot be registered; then child processes that
#                          exec other aarch64 programs fail with "Exec format error").
# Needs root (chroot, mounts).
set -euo pipefail

ROOT=${ROOT:-/work/arm64-root}
REPO=${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
REPO=$(cd "$REPO" && pwd -P)
ARM64_CPU=${ARM64_CPU:-}
ARM64_COPY=${ARM64_COPY:-0}
ARM64_NO_BINFMT=${ARM64_NO_BINFMT:-0}
QEMU=/usr/bin/qemu-aarch64-static   # static x86-64 binary, copied into the rootfs by setup.sh

warn() { echo "[arm64-run] $*" >&2; }
[ -x "$ROOT/opt/venv/bin/python" ] || { warn "no venv in $ROOT; run bench/arm64/setup.sh first"; exit 1; }
[ $# -gt 0 ] || set -- bash

# Keep the kernel's binfmt_misc entry for aarch64 in place (it is lost on reboot), so
# aarch64 programs run transparently and can exec each other (subprocess, shell scripts).
if [ "$ARM64_NO_BINFMT" != 1 ]; then
    B=/proc/sys/fs/binfmt_misc
    {   # each step may fail (not root, no binfmt_misc in this kernel/container): checked below
        [ -e $B/register ] || mount -t binfmt_misc binfmt_misc $B
        [ -e $B/qemu-aarch64 ] || cat /usr/lib/binfmt.d/qemu-aarch64.conf > $B/register
        [ "$(head -n1 $B/qemu-aarch64)" = enabled ] || echo 1 > $B/qemu-aarch64
    } 2>/dev/null || true
    if [ "$(head -n1 $B/qemu-aarch64 2>/dev/null)" != enabled ]; then
        warn "binfmt_misc unavailable: running the emulator explicitly (no exec of aarch64 children)"
        ARM64_NO_BINFMT=1
    fi
fi

# Working directory inside: the host cwd's place under /repo, else /repo.
HOST_PWD=$(pwd -P)
case "$HOST_PWD/" in "$REPO"/*) WORKDIR=/repo${HOST_PWD#"$REPO"} ;; *) WORKDIR=/repo ;; esac

# Clean environment for the guest: the host's PIP_*/SSL_* etc. point at host-only paths.
# PYTHONPATH=/repo makes `import vlaecodec` resolve to the repo without installing it;
# no .pyc files so the host tree is not touched by the guest python.
GUEST_ENV=(HOME=/root LC_ALL=C.UTF-8 TERM="${TERM:-dumb}" VIRTUAL_ENV=/opt/venv
           PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
           PYTHONPATH=/repo PYTHONDONTWRITEBYTECODE=1)
[ -z "$ARM64_CPU" ] || GUEST_ENV+=(QEMU_CPU="$ARM64_CPU")

# Without binfmt the kernel cannot start aarch64 files, so resolve the command (PATH
# lookup and #! line) here and hand it to the emulator ourselves. Trick used below: the
# emulated `env` execs the x86-64 static qemu binary, which the kernel runs natively.
CMD=("$@")
if [ "$ARM64_NO_BINFMT" = 1 ]; then
    resolve() {
        case $1 in */*) echo "$1"; return ;; esac
        local d
        for d in /opt/venv/bin /usr/local/bin /usr/bin /bin /usr/sbin /sbin; do
            [ -x "$ROOT$d/$1" ] && [ ! -d "$ROOT$d/$1" ] && { echo "$d/$1"; return; }
        done
        warn "command not found in rootfs: $1"; exit 127
    }
    prog=$(resolve "${CMD[0]}")
    CMD=("$prog" "${CMD[@]:1}")
    if [ "$(head -c2 "$ROOT$prog")" = '#!' ]; then      # script: run its interpreter
        read -r shebang < "$ROOT$prog"
        read -r -a interp <<< "${shebang#\#!}"
        if [ "${interp[0]}" = /usr/bin/env ]; then interp=("$(resolve "${interp[1]}")" "${interp[@]:2}"); fi
        CMD=("${interp[@]}" "${CMD[@]}")
    fi
    QEMU_ARGS=("$QEMU"); [ -z "$ARM64_CPU" ] || QEMU_ARGS+=(-cpu "$ARM64_CPU")
    CMD=("${QEMU_ARGS[@]}" "${CMD[@]}")   # inner emulator, started natively by the guest env
    ENTRY=("${QEMU_ARGS[@]}")             # outer emulator, runs the guest env itself
else
    ENTRY=()
fi

GUEST=("${ENTRY[@]}" /usr/bin/env -i --chdir="$WORKDIR" "${GUEST_ENV[@]}" "${CMD[@]}")

# Make the repo visible at /repo: a bind mount in a private mount namespace (it vanishes
# when the command ends, and concurrent runs do not interfere); fall back to a copy.
mkdir -p "$ROOT/repo"
if [ "$ARM64_COPY" != 1 ] && ! unshare --mount --propagation private mount --bind "$REPO" "$ROOT/repo" 2>/dev/null; then
    warn "bind mount not permitted: copying the repo to $ROOT/repo instead"
    ARM64_COPY=1
fi
if [ "$ARM64_COPY" = 1 ]; then
    if mountpoint -q "$ROOT/repo"; then warn "$ROOT/repo is a mount point; refusing to overwrite it"; exit 1; fi
    find "$ROOT/repo" -mindepth 1 -delete
    tar -C "$REPO" --exclude=./.git --exclude=__pycache__ --exclude=./.venv -cf - . | tar -C "$ROOT/repo" -xf -
    # /proc if we may mount it (python mostly works without it).
    if unshare --mount --propagation private true 2>/dev/null; then
        exec unshare --mount --propagation private sh -c \
            'mount -t proc proc "$0/proc" 2>/dev/null; exec "$@"' "$ROOT" chroot "$ROOT" "${GUEST[@]}"
    fi
    exec chroot "$ROOT" "${GUEST[@]}"
fi
exec unshare --mount --propagation private sh -c \
    'mount --bind "$1" "$0/repo" && mount -t proc proc "$0/proc" && shift && exec "$@"' \
    "$ROOT" "$REPO" chroot "$ROOT" "${GUEST[@]}"
