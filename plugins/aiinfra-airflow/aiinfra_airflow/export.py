"""``aiinfra export airflow``: settings + DVC's graph -> the DAG file, written only when it compiles."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from aiinfra.errors import ConfigError
from aiinfra_airflow import pipeline, render
from aiinfra_airflow import settings as settings_mod


def dag_id_of(project: Path, given: str | None) -> str:
    """The DAG id: ``given``, else conf/airflow.yaml's ``dag_id``, else the composed config's ``project``."""
    chosen = settings_mod.load(project, {"dag_id": given}).dag_id
    return chosen or _project_name(project)


def _project_name(project: Path) -> str:
    from aiinfra.config.compose import compose

    name = str(compose([], conf_dir=project / "conf").get("project") or project.name)
    if not settings_mod.ID_PATTERN.match(name):
        raise ConfigError(
            f"the config's project {name!r} is not a valid Airflow DAG id",
            hint="pass --dag-id or set dag_id in conf/airflow.yaml (letters, digits, '_', '.', '-')",
        )
    return name


def export(
    project: Path, flags: dict[str, Any], *, out: Path | None = None, python: str | None = None, check: bool = False
) -> tuple[Path, bool]:
    """Write (or with ``check`` only compare) the DAG file; returns (its path, whether it changed)."""
    settings = settings_mod.load(project, flags)
    settings.dag_id = settings.dag_id or _project_name(project)
    interpreter = _python(python)
    stages = pipeline.read(project)
    text = render.render(project, stages, settings, interpreter)
    out = (out if out is not None else project / "dags").absolute()
    path = out if out.suffix == ".py" else out / f"{settings.dag_id}.py"
    old = path.read_text() if path.is_file() else None
    if check or old == text:
        return path, old != text
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # Airflow's parser never sees half a file
    tmp.write_text(text)
    tmp.replace(path)
    return path, True


def _python(given: str | None) -> str:
    """The core environment's interpreter, as this process was started (a venv's bin/python, not
    resolved through its symlink: the venv's bin directory is what goes on PATH)."""
    if given is None:
        return sys.executable
    path = Path(given).absolute()
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise ConfigError(
            f"--python {given}: not an executable file", hint="the python of the env with aiinfra and dvc"
        )
    import subprocess

    probe = subprocess.run([str(path), "-c", "import aiinfra, dvc"], capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:
        raise ConfigError(
            f"--python {given}: cannot import aiinfra and dvc ({probe.stderr.strip().splitlines()[-1:]})",
            hint="pass the interpreter of the environment aiinfra is installed in",
        )
    return str(path)
