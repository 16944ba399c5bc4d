#!/usr/bin/env bash
# The main job, from a fresh clone: set up, start the local host in the background if none
# is running, `pulumi up` the quickstart (the root Pulumi.yaml), and show what it made.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

state_dir="${AGENTFORM_STATE_DIR:-$HOME/.agentform}"
endpoint="${AGENTFORM_ENDPOINT:-http://127.0.0.1:4860}"
export AGENTFORM_STATE_DIR="$state_dir"
export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$state_dir/pulumi-state}"
# Local quickstart state only; set your own passphrase for anything else.
export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE-agentform-quickstart}"
mkdir -p "$state_dir/pulumi-state"

if ! curl -sf "$endpoint/health" >/dev/null 2>&1; then
  echo "[quickstart] starting the local host (agentform serve; log: $state_dir/host.log)" >&2
  port="${endpoint##*:}"
  nohup agentform serve --port "$port" --state-dir "$state_dir" >>"$state_dir/host.log" 2>&1 &
  for _ in $(seq 100); do
    curl -sf "$endpoint/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -sf "$endpoint/health" >/dev/null || { echo "[quickstart] the host did not start; see $state_dir/host.log" >&2; exit 1; }
fi

pulumi stack select --create dev --non-interactive >/dev/null
pulumi config set agentform:endpoint "$endpoint" --non-interactive
pulumi up --yes --non-interactive
pulumi stack output --json
