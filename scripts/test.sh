#!/usr/bin/env bash
# The test command (README, and exactly what .ci/run runs): set up, lint, type-check, test.
# Extra arguments go to pytest, e.g. `scripts/test.sh tests/host -k blue_green`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
echo "[test] ruff" >&2
ruff check .
ruff format --check .
echo "[test] mypy" >&2
mypy
# What only the tests need, ahead of them (each idempotent and cached; the tests that need
# them would run these too): PostgreSQL's server (Debian package) for function connections,
# AWS's Lambda runtime emulator (built from Go modules) for the AWS runtime tests.
bash scripts/setup-postgres.sh >/dev/null
bash scripts/setup-rie.sh >/dev/null
echo "[test] pytest" >&2
set +e
pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "[test] pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$status"
