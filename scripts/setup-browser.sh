#!/usr/bin/env bash
# The browser the console tests drive: Debian's chromium-headless-shell (Playwright's own
# browser download cannot work offline). Idempotent: installs only when it is missing.
# Prints the executable's path.
set -euo pipefail
# The binary itself (/usr/bin/chromium-headless-shell is a shell wrapper around it).
exe=/usr/lib/chromium/chromium-headless-shell
if [ ! -x "$exe" ]; then
  echo "[setup-browser] installing chromium-headless-shell with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends chromium-headless-shell >&2; then
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends chromium-headless-shell >&2
  fi
fi
if [ ! -x "$exe" ]; then
  echo "[setup-browser] $exe is missing after the install" >&2
  exit 1
fi
echo "$exe"
