#!/usr/bin/env bash
# Installs toxiproxy-server (Shopify's TCP fault proxy), which the network-fault tests drive
# over its HTTP API, into creditline's cache directory (outside the repository): built from
# the Go module proxy with `go install`, so any machine with Go gets the same version.
# Idempotent; quiet when the binary of this version is there.
set -euo pipefail

VERSION=v2.5.0
# v2.5.0's server lives in cmd/server (cmd/toxiproxy-server is a later layout).
PACKAGE=github.com/Shopify/toxiproxy/v2/cmd/server
CACHE="${CREDITLINE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/creditline}"
BIN="$CACHE/bin"
TARGET="$BIN/toxiproxy-server"
STAMP="$TARGET.version"

if [ -x "$TARGET" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$VERSION" ]; then
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "go not found: install Go (e.g. apt-get install golang-go) for the network-fault tests' toxiproxy" >&2
  exit 1
fi

echo "installing toxiproxy-server $VERSION (go install) into $BIN"
mkdir -p "$BIN"
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
if ! GOBIN="$build" go install "$PACKAGE@$VERSION" >"$build/go.log" 2>&1; then
  cat "$build/go.log" >&2
  exit 1
fi
mv -f "$build/server" "$TARGET"
echo "$VERSION" >"$STAMP"
