#!/usr/bin/env bash
# Set up everything Agentform needs on a fresh machine, idempotently:
#   - a Python 3.11 virtualenv in .venv with the pinned dependencies (reinstalled only when
#     pyproject.toml or constraints.txt change),
#   - the Pulumi engine at the pinned version (scripts/setup-engine.sh; cached by version).
# Source it to get PATH set up:  source scripts/setup.sh
set -euo pipefail
_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_say() { printf '[setup] %s\n' "$*" >&2; }

_python="${AGENTFORM_PYTHON:-$(command -v python3.11 || true)}"
if [ -z "$_python" ]; then
  _say "Python 3.11 is required (python3.11 not found); install it or set AGENTFORM_PYTHON"
  exit 1
fi
if [ ! -x "$_repo/.venv/bin/python" ]; then
  _say "creating .venv with $_python"
  "$_python" -m venv "$_repo/.venv"
fi
_stamp="$_repo/.venv/.agentform-deps"
_want="$(cat "$_repo/pyproject.toml" "$_repo/constraints.txt" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$_stamp" 2>/dev/null)" != "$_want" ]; then
  _say "installing pinned dependencies into .venv"
  "$_repo/.venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip==25.3 >&2
  "$_repo/.venv/bin/python" -m pip install -q --disable-pip-version-check \
    -c "$_repo/constraints.txt" -e "$_repo[dev]" >&2
  echo "$_want" > "$_stamp"
fi
_engine="$(bash "$_repo/scripts/setup-engine.sh")"
export PATH="$_repo/.venv/bin:$_engine:$PATH"
export PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true \
  PULUMI_DISABLE_REGISTRY_RESOLVE=true
