#!/usr/bin/env bash
# Create (or reuse) Airflow's own virtual environment; print its directory on stdout.
#
#   scripts/airflow_env.sh [DIR]
#
# DIR: the argument, else $AIINFRA_AIRFLOW_ENV, else plugins/aiinfra-airflow/.airflow-env.
# Airflow never goes into aiinfra's environment: its pins (SQLAlchemy, pydantic, FastAPI, ...)
# are its own, and the DAG it runs only calls the core environment's `dvc` through a shell.
# Installs apache-airflow==$AIRFLOW_VERSION with the constraints file beside this script (the
# versions it was tested with) from pip's configured index. $AIRFLOW_PYTHON picks the interpreter
# (default python3). A finished env has a marker file; a half-built one (interrupted) is rebuilt.
# Concurrent callers wait on a lock instead of building the same directory twice.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
AIRFLOW_VERSION="${AIRFLOW_VERSION:-3.3.2}"
DIR="${1:-${AIINFRA_AIRFLOW_ENV:-$HERE/../.airflow-env}}"
PY="${AIRFLOW_PYTHON:-python3}"
CONSTRAINTS="$HERE/constraints-$AIRFLOW_VERSION.txt"
MARKER="$DIR/.aiinfra-airflow-$AIRFLOW_VERSION"

mkdir -p "$(dirname "$DIR")"
DIR="$(cd "$(dirname "$DIR")" && pwd)/$(basename "$DIR")"
MARKER="$DIR/.aiinfra-airflow-$AIRFLOW_VERSION"
exec 9>"$DIR.lock"
flock 9
if [ -f "$MARKER" ] && [ -x "$DIR/bin/airflow" ]; then
  echo "$DIR"
  exit 0
fi
start=$SECONDS
rm -rf "$DIR"
echo "airflow_env: building $DIR (apache-airflow==$AIRFLOW_VERSION, a few minutes)" >&2
"$PY" -m venv "$DIR"
constraint_args=()
[ -f "$CONSTRAINTS" ] && constraint_args=(--constraint "$CONSTRAINTS")
# pip's output goes to a log (a local mirror's "Location ... is ignored" lines run to hundreds)
LOG="$DIR.build.log"
if ! "$DIR/bin/python" -m pip install --no-input --disable-pip-version-check \
  "${constraint_args[@]}" "apache-airflow==$AIRFLOW_VERSION" >"$LOG" 2>&1; then
  grep -v "is ignored" "$LOG" | tail -20 >&2
  echo "airflow_env: pip install failed (full log: $LOG)" >&2
  exit 1
fi
"$DIR/bin/airflow" version >/dev/null
echo "built in $((SECONDS - start)) s" >"$MARKER"
echo "airflow_env: built $DIR in $((SECONDS - start)) s" >&2
echo "$DIR"
