#!/usr/bin/env bash
# Provide AWS's Lambda Runtime Interface Emulator (`aws-lambda-rie`) at the pinned version and
# print the path of the binary. The AWS runtime tests run each deployed zip under it.
#
#   rie="$(scripts/setup-rie.sh)"
#
# Order: the cache (${AGENTFORM_CACHE:-~/.cache/agentform}/aws-lambda-rie-<version>/); else a
# build from the Go module through the Go module proxy (minutes, once). Progress goes to
# stderr; stdout is only the binary's path.
set -euo pipefail

# The module has no tagged releases on the proxy: this is the pseudo-version
# `https://proxy.golang.org/github.com/aws/aws-lambda-runtime-interface-emulator/@latest`
# resolved to when it was pinned.
module="github.com/aws/aws-lambda-runtime-interface-emulator"
version="${AGENTFORM_RIE_VERSION:-v0.0.0-20261030222936-bef5c4ba774d}"
say() { printf '[rie] %s\n' "$*" >&2; }
fail() { printf '[rie] FAILED at step "%s": %s\n' "$1" "$2" >&2; exit 1; }

cache="${AGENTFORM_CACHE:-$HOME/.cache/agentform}/aws-lambda-rie-$version"
if [ -x "$cache/aws-lambda-rie" ]; then
  say "using cached aws-lambda-rie $version ($cache)"
  echo "$cache/aws-lambda-rie"
  exit 0
fi

command -v go >/dev/null 2>&1 || fail "find go" "Go >= 1.24 is needed to build aws-lambda-rie; install it and run again"
say "building aws-lambda-rie $version from Go modules (first time only; takes minutes)"
mkdir -p "$(dirname "$cache")"
stage="$(mktemp -d "${cache}.build.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
started=$SECONDS
CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod GOBIN="$stage" \
  go install -trimpath -ldflags "-s -w" "$module/cmd/aws-lambda-rie@$version" >&2 \
  || fail "go install" "building $module/cmd/aws-lambda-rie@$version failed (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))"
[ -x "$stage/aws-lambda-rie" ] || fail "verify" "go install produced no aws-lambda-rie in $stage"
rm -rf "$cache"
mv "$stage" "$cache"
trap - EXIT
say "built aws-lambda-rie $version in $((SECONDS - started))s -> $cache"
echo "$cache/aws-lambda-rie"
