"""``aiinfra airflow-trigger``: start the exported DAG from aiinfra's environment (the monitor's
``monitor.retrain.command``), through Airflow's own environment.

Two modes, both real Airflow:

- ``trigger`` queues a run in Airflow's metadata database (``airflow dags trigger``) and returns
  at once: the scheduler of a running Airflow deployment picks it up. The DAG must be known to
  Airflow (its dag processor parsed the dags folder).
- ``test`` runs the whole DAG now, in one process, and waits (``dag.test()`` through
  ``run_dag.py``): no scheduler needed; the run is recorded in the same database. The exit status
  is the run's (0: every task succeeded), so the monitor's retrain outcome is the pipeline's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from aiinfra.errors import AiinfraError

ENV_VAR = "AIINFRA_AIRFLOW_ENV"
RUN_DAG = Path(__file__).with_name("run_dag.py")
# written by scripts/airflow_env.sh into DIR while it builds, removed when the env is complete
BUILDING_MARKER = ".aiinfra-airflow-building"


class AirflowError(AiinfraError):
    """Airflow's environment or the DAG file is not where the command looks."""


def find_airflow(given: str | None, environ: Mapping[str, str]) -> Path:
    """``--airflow``, else ``$AIINFRA_AIRFLOW_ENV/bin/airflow``, else ``airflow`` on PATH."""
    hint = (
        "build Airflow's own environment with plugins/aiinfra-airflow/scripts/airflow_env.sh DIR and set "
        f"{ENV_VAR}=DIR (or pass --airflow DIR/bin/airflow)"
    )
    if given:
        candidate = Path(given)
        source = f"--airflow {given}"
    elif environ.get(ENV_VAR):
        candidate = Path(environ[ENV_VAR]) / "bin" / "airflow"
        source = f"{ENV_VAR}={environ[ENV_VAR]}"
    else:
        found = shutil.which("airflow")
        if not found:
            raise AirflowError(f"no Airflow: {ENV_VAR} is not set and there is no `airflow` on PATH", hint=hint)
        candidate, source = Path(found), f"`airflow` on PATH ({found})"
    if not (candidate.is_file() and os.access(candidate, os.X_OK)):
        raise AirflowError(f"{source}: {candidate} is not an executable", hint=hint)
    building = candidate.absolute().parent.parent / BUILDING_MARKER
    if building.exists():
        raise AirflowError(
            f"{source}: {candidate.parent.parent} is an unfinished build of airflow_env.sh ({building} is there)",
            hint=f"run plugins/aiinfra-airflow/scripts/airflow_env.sh {candidate.parent.parent} again to finish it",
        )
    return candidate.absolute()


def airflow_python(airflow: Path) -> Path:
    """The interpreter that runs ``airflow``: its script's shebang (a venv's, pipx's or a system
    install's), else a ``python`` beside the script with symlinks resolved."""
    candidates = []
    try:
        with airflow.open("rb") as script:
            head = script.read(8192).decode(errors="replace").splitlines()[:2]
    except OSError:
        head = []
    if head and head[0].startswith("#!"):
        words = head[0][2:].split()
        if len(head) > 1 and head[1].startswith("'''exec' ") and head[1].count('"') >= 2:
            # pip's form for a long interpreter path: `#!/bin/sh` then `'''exec' "/path/python" "$0" "$@"`
            candidates.append(Path(head[1].split('"')[1]))
        elif words and Path(words[0]).name == "env":
            # `#!/usr/bin/env python3` names a command on PATH
            names = [w for w in words[1:] if not w.startswith("-")]
            found = shutil.which(names[0]) if names else None
            if found:
                candidates.append(Path(found))
        elif words:
            candidates.append(Path(words[0]))
    candidates += [airflow.parent / "python", airflow.resolve().parent / "python"]
    for python in candidates:
        if python.is_file() and os.access(python, os.X_OK):
            return python
    raise AirflowError(
        f"{airflow}: cannot find the Python that runs it (tried {', '.join(str(c) for c in candidates)})",
        hint=f"pass --airflow DIR/bin/airflow of a virtual environment, or set {ENV_VAR}=DIR",
    )


def airflow_environ() -> dict[str, str]:
    """This process's environment without what points Python at aiinfra's packages: Airflow's
    interpreter must import its own SQLAlchemy, pydantic and FastAPI, not the core env's."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def test(airflow: Path, dag_file: Path, dag_id: str) -> int:
    """Run the DAG now with ``dag.test()`` in Airflow's interpreter; its exit status."""
    if not dag_file.is_file():
        raise AirflowError(
            f"no DAG file {dag_file}", hint="write it first: aiinfra export airflow (or pass --dag-file)"
        )
    python = airflow_python(airflow)
    return subprocess.call([str(python), str(RUN_DAG), str(dag_file.absolute()), dag_id], env=airflow_environ())


def trigger(airflow: Path, dag_id: str) -> int:
    """Queue a run for Airflow's scheduler (``airflow dags trigger``); its exit status."""
    return subprocess.call([str(airflow), "dags", "trigger", dag_id, "--output", "json"], env=airflow_environ())
