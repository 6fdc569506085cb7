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
# An existing DIR that this script did not make is refused (exit 2), never deleted.
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
if [ -f "$MARKER" ] && [ -x "$DIR/bin/airflow" ] && [ ! -e "$DIR/.aiinfra-airflow-building" ]; then
  echo "$DIR"
  exit 0
fi
BUILDING="$DIR/.aiinfra-airflow-building"   # trigger.py's BUILDING_MARKER: find_airflow refuses such a DIR
if [ -e "$DIR" ]; then
  # Only what this script made is deleted: an empty dir, or one of our builds (unfinished, or of
  # another Airflow version). Anything else (a user's own Airflow env, a typo'd path) is left alone.
  ours=""
  if [ -d "$DIR" ] && [ -z "$(ls -A "$DIR")" ]; then ours=empty; fi
  if [ -d "$DIR" ] && compgen -G "$DIR/.aiinfra-airflow-*" >/dev/null; then ours=ours; fi
  if [ -z "$ours" ]; then
    echo "airflow_env: $DIR exists and is not an environment this script built: not touching it." >&2
    echo "airflow_env: pass a new or empty DIR (an Airflow env of your own can be used as is: AIINFRA_AIRFLOW_ENV=$DIR)" >&2
    exit 2
  fi
  rm -rf "$DIR"
fi
start=$SECONDS
echo "airflow_env: building $DIR (apache-airflow==$AIRFLOW_VERSION, a few minutes)" >&2
mkdir -p "$DIR"
# A venv cannot be moved once built (its scripts' shebangs name DIR), so it is built in place and
# carries this marker until complete: an interrupted or failed build is never taken for an env.
echo "started $(date -u +%FT%TZ)" >"$BUILDING"
"$PY" -m venv "$DIR"
constraint_args=()
[ -f "$CONSTRAINTS" ] && constraint_args=(--constraint "$CONSTRAINTS")
# pip's output goes to a log (a local mirror's "Location ... is ignored" lines run to hundreds)
LOG="$DIR.build.log"
if ! "$DIR/bin/python" -m pip install --no-input --disable-pip-version-check \
  "${constraint_args[@]}" "apache-airflow==$AIRFLOW_VERSION" >"$LOG" 2>&1; then
  # `|| true`: grep exits 1 when every line is filtered out, which pipefail would make fatal
  { grep -v "is ignored" "$LOG" || true; } | tail -20 >&2
  echo "airflow_env: pip install failed (full log: $LOG)" >&2
  exit 1
fi
if ! "$DIR/bin/airflow" version >/dev/null 2>>"$LOG"; then
  echo "airflow_env: $DIR/bin/airflow does not start (full log: $LOG)" >&2
  exit 1
fi
echo "built in $((SECONDS - start)) s" >"$MARKER"
rm -f "$BUILDING"
echo "airflow_env: built $DIR in $((SECONDS - start)) s" >&2
echo "$DIR"
