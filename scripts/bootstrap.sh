#!/usr/bin/env bash
# Set up everything drvault needs on a fresh Debian 12 machine (run as root), idempotently:
# Debian packages (compiler and headers for the C chunker, venv; with "test" also OpenSSH's sshd),
# a virtual environment in .venv, and drvault installed in it in editable mode (which builds
# the C extension in place). Sourced by scripts/demo.sh and scripts/test.sh.
set -euo pipefail

want_test=${1:-}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
PYTHON=${PYTHON:-python3}

apt_packages=()
command -v gcc >/dev/null || apt_packages+=(gcc libc6-dev)
"$PYTHON" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  || apt_packages+=(python3-dev)
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || apt_packages+=(python3-venv)
if [ "$want_test" = test ]; then
  [ -x /usr/sbin/sshd ] || apt_packages+=(openssh-server)
  command -v tc >/dev/null || apt_packages+=(iproute2)  # network namespaces for link shaping
  command -v chromium >/dev/null || apt_packages+=(chromium)  # headless browser for HTML reports
fi
if [ ${#apt_packages[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${apt_packages[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
extras=""
[ "$want_test" = test ] && extras="[test]"
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip setuptools wheel
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}"
export PATH="$root/.venv/bin:$PATH"
