#!/usr/bin/env bash
# System packages the test suite needs beyond the Python venv: the real `prometheus` (and `promtool`)
# binaries for tests/deploy/test_prometheus.py. Idempotent: installs only what is missing.
# Usage: scripts/install_system_packages.sh   (as root, or with sudo available)
set -euo pipefail

missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)

if [ ${#missing[@]} -eq 0 ]; then
    echo "system packages: prometheus $(prometheus --version 2>&1 | head -n1 | awk '{print $3}') already installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "error: prometheus is missing and this is not root (and sudo is not available)" >&2
        echo "hint: run as root: apt-get install -y --no-install-recommends prometheus" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# Debian's package starts a service where systemd runs; the tests start their own instance
$SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
echo "system packages: installed $(prometheus --version 2>&1 | head -n1)"
