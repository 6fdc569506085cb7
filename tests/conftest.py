"""Shared fixtures: temporary aiinfra projects with real MLflow stores, run through the real CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import Phase, settings

from aiinfra.runner import setup_environment
from project_helpers import REPO, cli_env

# the test process runs like an aiinfra process (DO_NOT_TRACK=1 ...), and so does every child it starts
setup_environment()

TEMPLATE_ENV = "AIINFRA_TEST_MLFLOW_TEMPLATE"

# scripts/mutate.py runs with --hypothesis-profile=mutations: a mutant needs a failing example,
# not the smallest one (shrinking took two minutes of a property test's three)
settings.register_profile("mutations", phases=[Phase.explicit, Phase.reuse, Phase.generate])


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: `make test` runs the tests on CPU workers
def pytest_xdist_make_scheduler(config, log):
    """Each module whole on one worker, and the Ray modules all on one (tests/worker_layout.py)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from worker_layout import RayModulesTogether

    return RayModulesTogether(config, log)


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


@pytest.fixture(scope="session")
def ray_local():
    """ONE local Ray instance (4 logical CPUs) for the whole session: Ray Serve's tests and
    ``prepare.engine=ray`` (whose ``aiinfra prepare`` subprocesses join it through the GCS address
    this yields) share it, because a Ray start costs ~6 s here.

    Short autoscaling metric intervals (Ray's own autoscaling tests use 0.1 s) keep scaling tests short.
    """
    import ray  # aiinfra[ray]: installed by `make venv`; a missing Ray fails here rather than skipping

    os.environ.setdefault("RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S", "0.1")
    os.environ.setdefault("RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S", "0.1")
    # Ray's workers keep the environment of ray.init for the whole session: a store another test
    # pointed MLFLOW_TRACKING_URI at (it wins over tracking.uri) must not leak into the workers
    leaked = os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    finally:
        if leaked is not None:
            os.environ["MLFLOW_TRACKING_URI"] = leaked
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
