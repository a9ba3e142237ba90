#!/usr/bin/env bash
# Tries creditline on the newer Python interpreters this machine has (requires-python has no
# upper bound): for each, a fresh virtualenv, `pip install --require-hashes` of the dev lock,
# the package itself, then the unit tests (the pure core, the contract, the generated files).
#
#   scripts/check-pythons.sh              3.12, 3.13 and 3.14, whichever are here
#   CHECK_PYTHONS="3.13" scripts/check-pythons.sh
#
# An interpreter is `pythonX.Y` on PATH if it runs (a pyenv shim for a version that is not
# selected does not), else one of pyenv's installed versions. Versions not found are
# reported and skipped; none found at all is not a failure (exit 0), so CI on a machine with
# only 3.11 passes and says so. Integration and e2e tests stay on the main interpreter: what
# they add is Kafka and Redis, not the language.
#
# The interpreters are checked at the same time, each one's output printed whole when it is
# done, in the order of $versions. Their property tests run with Hypothesis' `compat` profile
# (a fifth of the examples: tests/properties.py), since what is checked here is the
# interpreter; the main interpreter's `pytest` runs them at full depth. HYPOTHESIS_PROFILE
# set by the caller is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

versions=${CHECK_PYTHONS:-3.12 3.13 3.14}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

find_python() {  # X.Y -> path of a working interpreter, or nothing
  local version=$1 candidate
  candidate=$(command -v "python$version" 2>/dev/null || true)
  if [ -n "$candidate" ] && "$candidate" -c 'import sys' >/dev/null 2>&1; then
    echo "$candidate"
    return
  fi
  if command -v pyenv >/dev/null 2>&1; then
    for candidate in "$(pyenv root)"/versions/"$version".*/bin/python"$version"; do
      if [ -x "$candidate" ] && "$candidate" -c 'import sys' >/dev/null 2>&1; then
        echo "$candidate"
        return
      fi
    done
  fi
}

install_native() {  # venv -> the compiled status machine's abi3 wheel, when `make install` built one
  local wheel
  for wheel in .venv/native-wheels/creditline_native-*.whl; do
    [ -f "$wheel" ] || return 0
    "$1/bin/pip" install -q --disable-pip-version-check --no-deps "$wheel"
  done
}

check() {  # X.Y interpreter -> its venv, install and unit tests; exit status as theirs
  local version=$1 python=$2 venv="$work/py$1" start=$SECONDS
  echo "python$version: $python ($("$python" -c 'import platform; print(platform.python_version())'))"
  if "$python" -m venv "$venv" &&
    "$venv/bin/pip" install -q --disable-pip-version-check --require-hashes -r requirements-dev.lock &&
    "$venv/bin/pip" install -q --disable-pip-version-check --no-deps . &&
    install_native "$venv" &&
    (cd "$work" && "$venv/bin/python" -c 'import streams.cli, schemas, faust, aiokafka') &&
    HYPOTHESIS_PROFILE=${HYPOTHESIS_PROFILE:-compat} \
      "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/unit; then
    echo "python$version: passed in $((SECONDS - start)) s"
  else
    echo "python$version: FAILED after $((SECONDS - start)) s"
    return 1
  fi
}

declare -A pid
tried=0
for version in $versions; do
  python=$(find_python "$version")
  if [ -z "$python" ]; then
    echo "python$version: not on this machine, skipped" >"$work/py$version.log"
    continue
  fi
  check "$version" "$python" >"$work/py$version.log" 2>&1 &
  pid[$version]=$!
  tried=$((tried + 1))
done

failed=()
for version in $versions; do
  status=0
  if [ -n "${pid[$version]:-}" ]; then
    wait "${pid[$version]}" || status=$?
  fi
  cat "$work/py$version.log"
  [ "$status" -eq 0 ] || failed+=("$version")
done

if [ "$tried" -eq 0 ]; then
  echo "no other Python interpreter found ($versions): nothing to check"
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed on: ${failed[*]}" >&2
  exit 1
fi
