#!/usr/bin/env bash
# Provide the real Pulumi engine (CLI, Python language host and its two support files) at
# the version pinned in engine/go.mod, plus the launcher of Python policy packs
# (`pulumi-analyzer-policy-python`, for `pulumi preview --policy-pack`), and print the
# directory that holds them.
#
#   PATH="$(scripts/setup-engine.sh):$PATH"
#
# Order: a matching `pulumi` already on PATH; else the cache
# (${AGENTFORM_CACHE:-~/.cache/agentform}/pulumi-v<ver>/bin); else a build from Go modules
# through the Go module proxy (minutes, once). Progress goes to stderr; stdout is only the
# directory, so callers can capture it.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
wrapper="$repo/engine"
say() { printf '[engine] %s\n' "$*" >&2; }
fail() { printf '[engine] FAILED at step "%s": %s\n' "$1" "$2" >&2; exit 1; }

version="$(awk '$1 == "github.com/pulumi/pulumi/pkg/v3" { print $2; exit }' "$wrapper/go.mod")"
[ -n "$version" ] || fail "read version" "no github.com/pulumi/pulumi/pkg/v3 requirement in $wrapper/go.mod"
binaries=(pulumi pulumi-language-python pulumi-language-python-exec pulumi-resource-pulumi-python)

complete_in() { # $1: directory; true when it holds every binary and `pulumi version` matches
  local b
  for b in "${binaries[@]}"; do [ -x "$1/$b" ] || return 1; done
  [ "$("$1/pulumi" version 2>/dev/null)" = "$version" ]
}

# The policy-pack launcher is a script from the same sdk/v3 module as the language host's
# support files. It is added on its own, so an engine built or cached before it was needed
# gets it without a rebuild: one module download (already in the module cache after a build).
analyzer=pulumi-analyzer-policy-python
sdk_dir() {
  (cd "$wrapper" && GOFLAGS=-mod=readonly GONOSUMDB=github.com/pulumi/pulumi \
    go mod download -json github.com/pulumi/pulumi/sdk/v3) \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}
add_analyzer() { # $1: the engine's directory
  [ -x "$1/$analyzer" ] && return 0
  local sdk
  if ! command -v go >/dev/null 2>&1 || ! sdk="$(sdk_dir)" || [ ! -f "$sdk/python/dist/$analyzer" ]; then
    say "warning: could not add $analyzer to $1 (needs Go and the sdk/v3 module); \`pulumi preview --policy-pack\` will not work"
    return 0
  fi
  if install -m 0755 "$sdk/python/dist/$analyzer" "$1/" 2>/dev/null; then
    say "added $analyzer $version to $1"
  else
    say "warning: cannot write $analyzer into $1; \`pulumi preview --policy-pack\` will not work"
  fi
}

# 1. A pulumi of the pinned version already on PATH (with its companions beside it).
if on_path="$(command -v pulumi 2>/dev/null)" && complete_in "$(dirname "$on_path")"; then
  say "using pulumi $version on PATH ($(dirname "$on_path"))"
  add_analyzer "$(dirname "$on_path")"
  dirname "$on_path"
  exit 0
fi

# 2. The cache, keyed by version.
cache="${AGENTFORM_CACHE:-$HOME/.cache/agentform}/pulumi-$version"
if complete_in "$cache/bin"; then
  say "using cached pulumi $version ($cache/bin)"
  add_analyzer "$cache/bin"
  echo "$cache/bin"
  exit 0
fi

# 3. Build from Go modules.
command -v go >/dev/null 2>&1 || fail "find go" "Go >= 1.24 is needed to build the Pulumi engine; install it (https://go.dev/dl or your package manager) and run again"
say "building pulumi $version from Go modules (first time only; takes minutes)"
export CGO_ENABLED=0 GOFLAGS=-mod=readonly GOTOOLCHAIN=local
# The proxy's checksum database has no entries for some of these older modules; the
# committed engine/go.sum pins every module's hash instead, and -mod=readonly enforces it.
export GONOSUMDB=github.com/pulumi/pulumi
mkdir -p "$(dirname "$cache")"
stage="$(mktemp -d "${cache}.build.XXXXXX")"
ticker=""
stop_ticker() { # the ticker is a child: end it by its id (and its sleep, through its trap)
  if [ -n "$ticker" ]; then
    kill "$ticker" 2>/dev/null || true
    wait "$ticker" 2>/dev/null || true
    ticker=""
  fi
}
trap 'stop_ticker; rm -rf "$stage"' EXIT
mkdir -p "$stage/bin"
cd "$wrapper"

# Go prints nothing while it compiles, for minutes: say how long a step has been running.
tick="${AGENTFORM_ENGINE_TICK_SECONDS:-30}"
elapsed() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }
with_ticker() { # $1: what to say while it runs, then the command; returns the command's status
  local doing="$1" since=$SECONDS status=0
  shift
  (
    sleeper=""
    trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
    while :; do
      sleep "$tick" &
      sleeper=$!
      wait "$sleeper"
      kill -0 $$ 2>/dev/null || exit 0 # $$ is this script: it was killed without its EXIT trap
      say "$doing ($(elapsed $((SECONDS - since))))"
    done
  ) >&2 &
  ticker=$!
  "$@" || status=$?
  stop_ticker
  return "$status"
}

started=$SECONDS
say "step 1/4: downloading modules"
with_ticker "step 1/4: still downloading modules" go mod download >&2 \
  || fail "download modules" "go mod download failed (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))"

ldflags="-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version"
build() { # $1: step label, $2: package, $3: output name
  say "$1: go build $2"
  with_ticker "$1: still building $3" \
    go build -trimpath -tags osusergo,grpcnotrace -ldflags "$ldflags" -o "$stage/bin/$3" "$2" >&2 \
    || fail "$1 ($3)" "go build $2 failed; see the compiler output above"
}
build "step 2/4" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi pulumi
build "step 3/4" github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3 pulumi-language-python

say "step 4/4: installing the language host's support files from the sdk/v3 module"
sdk="$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)" || fail "step 4/4" "cannot locate the sdk/v3 module"
install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" "$stage/bin/" \
  || fail "step 4/4" "missing $sdk/python/cmd/pulumi-language-python-exec"
install -m 0755 "$sdk/python/dist/pulumi-resource-pulumi-python" "$stage/bin/" \
  || fail "step 4/4" "missing $sdk/python/dist/pulumi-resource-pulumi-python"
install -m 0755 "$sdk/python/dist/$analyzer" "$stage/bin/" \
  || fail "step 4/4" "missing $sdk/python/dist/$analyzer"

complete_in "$stage/bin" || fail "verify" "built pulumi reports version '$("$stage/bin/pulumi" version 2>&1)', expected $version"
rm -rf "$cache"
mv "$stage" "$cache"
trap - EXIT
say "built pulumi $version in $((SECONDS - started))s -> $cache/bin"
echo "$cache/bin"
