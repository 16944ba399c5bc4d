#!/usr/bin/env bash
# The main job, from a fresh clone: set up; start the local host (and the scripted test model,
# unless a real provider key is configured) in the background if they are not running;
# `pulumi up` the quickstart (the root Pulumi.yaml); ask the agent a question; print the
# answer and its lineage tree. Safe to run again: everything is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
say() { printf '[quickstart] %s\n' "$*" >&2; }

state_dir="${AGENTFORM_STATE_DIR:-$HOME/.agentform}"
endpoint="${AGENTFORM_ENDPOINT:-http://127.0.0.1:4860}"
model_port="${AGENTFORM_TEST_MODEL_PORT:-4870}"
question="${1:-What is the weather in Paris today?}"
export AGENTFORM_STATE_DIR="$state_dir" AGENTFORM_ENDPOINT="$endpoint"
# The Pulumi backend and passphrase are setup.sh's defaults (file backend in
# $state_dir/pulumi-state, a local quickstart's passphrase), unless already set.
mkdir -p "$state_dir"

up() { curl -sf -o /dev/null "$1"; }
start() { # $1: name, $2: health URL, $3: log, then the command
  local name="$1" health="$2" log="$3"
  shift 3
  if up "$health"; then return; fi
  say "starting $name in the background (log: $log)"
  nohup "$@" >>"$log" 2>&1 &
  for _ in $(seq 150); do up "$health" && return; sleep 0.1; done
  say "$name did not start; see $log"
  exit 1
}

start "the local host" "$endpoint/health" "$state_dir/host.log" \
  agentform serve --port "${endpoint##*:}" --state-dir "$state_dir"

# The stack's configuration (Pulumi.dev.yaml, not in git) is written here, from this machine's
# endpoint and ports.
pulumi stack select --create dev --non-interactive >/dev/null
pulumi config set agentform:endpoint "$endpoint" --non-interactive
if ! pulumi config get openai_api_key --non-interactive >/dev/null 2>&1; then
  # No real provider configured: the scripted TEST model answers (deterministic, offline).
  start "the scripted test model" "http://127.0.0.1:$model_port/_script/requests" "$state_dir/test-model.log" \
    agentform scripted-model --port "$model_port" --script examples/quickstart/test-model-script.json
  pulumi config set test_model_url "http://127.0.0.1:$model_port/v1" --non-interactive
fi

pulumi up --yes --non-interactive
say "asking the agent: $question"
agentform invoke dev/agents/assistant --input "$question" --lineage
