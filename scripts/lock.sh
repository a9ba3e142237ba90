#!/usr/bin/env bash
# Regenerates requirements.lock (runtime) and requirements-dev.lock (runtime + dev) from
# pyproject.toml with pip-tools, every distribution with its sha256 hashes, so that
# `pip install --require-hashes -r requirements-dev.lock` (make install, the Dockerfile)
# installs exactly what was locked or nothing.
#
#   scripts/lock.sh            keep every pinned version, add what is new, drop what is gone
#   scripts/lock.sh --upgrade  also move unpinned transitive dependencies to their newest
#
# pip-compile starts from the versions already in the lock files: a direct dependency moves
# only when pyproject.toml's pin does. The dev lock is compiled with the runtime lock as a
# constraint, so both pin every shared package to the same version with the same hashes.
set -euo pipefail
cd "$(dirname "$0")/.."

PIP_TOOLS_VERSION=7.6.2
# Hashes only of what the package index serves: no machine-local wheel directory.
unset PIP_FIND_LINKS
PYTHON=${PYTHON:-python3}
mode=${1:-}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check "pip-tools==$PIP_TOOLS_VERSION"

compile() {  # output file, then pip-compile arguments
  local output=$1
  shift
  local args=(--quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url
              --no-emit-trusted-host --no-emit-find-links --resolver=backtracking
              --output-file "$output")
  [ "$mode" = "--upgrade" ] && args+=(--upgrade)
  "$work/venv/bin/pip-compile" "${args[@]}" "$@" pyproject.toml
}

# Header lines pip-compile writes name the command; keep them stable whatever ran it.
export CUSTOM_COMPILE_COMMAND="scripts/lock.sh"
compile requirements.lock
compile requirements-dev.lock --extra dev --extra model --constraint requirements.lock
# The benchmark's Quix Streams peer, a venv of its own (see the file's comment).
args=(--quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url
      --no-emit-trusted-host --no-emit-find-links --resolver=backtracking)
[ "$mode" = "--upgrade" ] && args+=(--upgrade)
"$work/venv/bin/pip-compile" "${args[@]}" --output-file bench/peers/quix.lock bench/peers/quix.in

