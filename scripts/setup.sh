#!/usr/bin/env bash
# Set up everything Agentform needs on a fresh machine, idempotently:
#   - a Python 3.11 virtualenv in .venv with the pinned dependencies (reinstalled only when
#     pyproject.toml or constraints.txt change),
#   - the Pulumi engine at the pinned version (scripts/setup-engine.sh; cached by version),
#   - libseccomp (Debian's libseccomp2) for the workers' seccomp filter, if missing.
# What only the tests need (PostgreSQL's server, AWS's runtime emulator, a browser) is set up
# by scripts/test.sh and the tests themselves, not here.
#
#   bash scripts/setup.sh     set up only
#   source scripts/setup.sh   set up, then, in this shell, put .venv/bin and the engine on PATH
#                             and export (keeping any value already set):
#       PULUMI_BACKEND_URL        file://${AGENTFORM_STATE_DIR:-~/.agentform}/pulumi-state
#       PULUMI_CONFIG_PASSPHRASE  agentform-quickstart (a local quickstart's state only; unless
#                                 PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE is set)
#       PULUMI_SKIP_UPDATE_CHECK, PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION,
#       PULUMI_DISABLE_REGISTRY_RESOLVE   true (the engine is pinned and offline)
#
# Sourced, it changes nothing else in the shell: the work runs in a child bash, so its
# `set -euo pipefail` and `exit` never reach an interactive shell.

if [ -z "${BASH_VERSION:-}" ]; then
  echo "[setup] run or source scripts/setup.sh with bash" >&2
  return 1 2>/dev/null || exit 1
fi
if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  _agentform_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  if _agentform_engine="$(bash "$_agentform_repo/scripts/setup.sh" --print-engine-dir)"; then
    export PATH="$_agentform_repo/.venv/bin:$_agentform_engine:$PATH"
    export PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true \
      PULUMI_DISABLE_REGISTRY_RESOLVE=true
    if [ -z "${PULUMI_BACKEND_URL:-}" ]; then
      export PULUMI_BACKEND_URL="file://${AGENTFORM_STATE_DIR:-$HOME/.agentform}/pulumi-state"
      (umask 077 && mkdir -p "${PULUMI_BACKEND_URL#file://}")  # the host's state dir is 0700 too
    fi
    if [ -z "${PULUMI_CONFIG_PASSPHRASE+set}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
      export PULUMI_CONFIG_PASSPHRASE=agentform-quickstart
    fi
    unset _agentform_repo _agentform_engine
  else
    unset _agentform_repo _agentform_engine
    return 1
  fi
  return 0
fi

set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { printf '[setup] %s\n' "$*" >&2; }

if [ ! -x "$repo/.venv/bin/python" ]; then
  python="${AGENTFORM_PYTHON:-$(command -v python3.11 || true)}"
  if [ -z "$python" ]; then
    say "Python 3.11 is required (python3.11 not found); install it or set AGENTFORM_PYTHON"
    exit 1
  fi
  say "creating .venv with $python"
  "$python" -m venv "$repo/.venv"
fi
stamp="$repo/.venv/.agentform-deps"
want="$(cat "$repo/pyproject.toml" "$repo/constraints.txt" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing pinned dependencies into .venv"
  "$repo/.venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip==25.3 >&2
  "$repo/.venv/bin/python" -m pip install -q --disable-pip-version-check \
    -c "$repo/constraints.txt" -e "$repo[dev]" >&2
  echo "$want" > "$stamp"
fi
# libseccomp, which builds the workers' seccomp filter (Debian's libseccomp2, on most systems
# already): looked up the way the host looks it up.
if ! "$repo/.venv/bin/python" -c \
  'import ctypes.util, sys; sys.exit(ctypes.util.find_library("seccomp") is None)'; then
  say "installing libseccomp2 with apt-get"
  apt-get install -y -q --no-install-recommends libseccomp2 >&2 \
    || { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends libseccomp2 >&2; }
fi
engine="$(bash "$repo/scripts/setup-engine.sh")"
if [ "${1:-}" = --print-engine-dir ]; then
  echo "$engine"
else
  say "ready; \`source scripts/setup.sh\` puts .venv/bin and pulumi on PATH in your shell"
fi
