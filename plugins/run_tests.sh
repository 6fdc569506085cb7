#!/usr/bin/env bash
# Install each plugin package into a throwaway directory and run its own tests against it.
#
#   plugins/run_tests.sh                 every package under plugins/
#   plugins/run_tests.sh aiinfra-sql     only the named ones
#
# Uses `python` from PATH (the Makefile puts .venv/bin first) or $PYTHON. The packages are
# installed with --no-deps --no-build-isolation (fast, offline): their dependencies must already be
# in the environment; a missing one is reported by name before any test runs.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-python}"
if [ "$#" -gt 0 ]; then names=("$@"); else
  names=(); for d in "$HERE"/*/; do [ -f "$d/pyproject.toml" ] && names+=("$(basename "$d")"); done
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=()
for name in "${names[@]}"; do
  pkg="$HERE/$name"
  [ -f "$pkg/pyproject.toml" ] || { echo "run_tests: no package plugins/$name" >&2; exit 2; }
  echo "=== $name"
  start=$SECONDS
  "$PY" "$HERE/check_deps.py" "$pkg" || { failed+=("$name (missing dependencies)"); continue; }
  target="$work/$name"
  "$PY" -m pip install --quiet --no-deps --no-build-isolation --no-input --disable-pip-version-check \
      --target "$target" "$pkg"
  rm -rf "$pkg/build" "$pkg"/*.egg-info   # setuptools leaves these in the source tree
  # From a neutral directory, so the tests import the installed copy, not the source tree.
  if (cd "$work" && PYTHONPATH="$target${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m pytest "$pkg/tests" \
        -c "$pkg/pyproject.toml" --rootdir "$pkg" -q); then
    echo "=== $name passed in $((SECONDS - start)) s"
  else
    failed+=("$name"); echo "=== $name FAILED after $((SECONDS - start)) s"
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then echo "plugin packages failing: ${failed[*]}" >&2; exit 1; fi
echo "all plugin packages passed: ${names[*]}"
