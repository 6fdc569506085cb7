"""Shared fixtures: temporary aiinfra projects with real MLflow stores, run through the real CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aiinfra.runner import setup_environment
from project_helpers import REPO, cli_env

# the test process runs like an aiinfra process (DO_NOT_TRACK=1 ...), and so does every child it starts
setup_environment()


@pytest.fixture(scope="session")
def mlflow_db_template(tmp_path_factory) -> Path:
    """A migrated, empty MLflow sqlite store, built once: a fresh one costs ~11 s of migrations."""
    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    code = (
        "import mlflow, sys; c = mlflow.MlflowClient(tracking_uri='sqlite:///' + sys.argv[1]); "
        "c.search_experiments(); c.search_registered_models()"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, env=cli_env(), timeout=300, capture_output=True)
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
