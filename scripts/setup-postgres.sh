#!/usr/bin/env bash
# Install PostgreSQL's server binaries from Debian's packages, idempotently: the tests of
# function connections start a throwaway server on a loopback port. Prints the bin directory.
set -euo pipefail
find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
bin="$(find_bin || true)"
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "[setup] installing postgresql (Debian package)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends postgresql >&2 \
    || { apt-get update >&2 && apt-get install -y --no-install-recommends postgresql >&2; }
  bin="$(find_bin)"
fi
echo "$bin"
