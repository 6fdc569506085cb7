"""Shared fixtures: temporary aiinfra projects with real MLflow stores, run through the real CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aiinfra.runner import setup_environment
from project_helpers import REPO, cli_env

# the test process runs like an aiinfra process (DO_NOT_TRACK=1 ...), and so does every child it starts
setup_environment()

TEMPLATE_ENV = "AIINFRA_TEST_MLFLOW_TEMPLATE"


@pytest.fixture(scope="session")
def mlflow_db_template(tmp_path_factory) -> Path:
    """A migrated, empty MLflow sqlite store, built once: a fresh one costs ~11 s of migrations.

    ``AIINFRA_TEST_MLFLOW_TEMPLATE`` names a file to reuse across pytest processes (scripts/mutate.py
    starts one per mutation): built there when missing. Only MLflow's own code writes it, so no
    mutation of aiinfra can change what it holds.
    """
    shared = os.environ.get(TEMPLATE_ENV)
    if shared and Path(shared).is_file():
        return Path(shared)
    path = Path(shared) if shared else tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    code = (
        "import mlflow, sys; c = mlflow.MlflowClient(tracking_uri='sqlite:///' + sys.argv[1]); "
        "c.search_experiments(); c.search_registered_models()"
    )
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # renamed when complete
    cmd = [sys.executable, "-c", code, str(partial)]
    subprocess.run(cmd, check=True, env=cli_env(), timeout=300, capture_output=True)
    partial.replace(path)
    return path


@pytest.fixture
def project(tmp_path: Path, mlflow_db_template: Path) -> Path:
    """A fresh aiinfra project: the repo's conf/ and dvc.yaml, a copy of the migrated MLflow store,
    and short training so tests stay fast."""
    root = tmp_path / "proj"
    root.mkdir()
    shutil.copytree(REPO / "conf", root / "conf")
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    shutil.copy(mlflow_db_template, root / "mlflow.db")
    cpu = root / "conf" / "trainer" / "cpu.yaml"
    cpu.write_text(cpu.read_text().replace("max_epochs: 30", "max_epochs: 8"))
    return root
