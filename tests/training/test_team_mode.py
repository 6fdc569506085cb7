"""Team mode: the whole pipeline (`dvc repro` through register) against a real MLflow tracking
server (MLFLOW_TRACKING_URI) and a DVC remote (a local directory) that round-trips the prepared
data and the trained model through `dvc push` / `dvc pull`."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from project_helpers import cli_env, init_git_dvc, project_client

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path, mlflow_db_template):
    db = tmp_path / "server" / "mlflow.db"
    db.parent.mkdir()
    shutil.copy(mlflow_db_template, db)  # migrated once per session
    port = _free_port()
    proc = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{db}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--artifacts-destination",
            str(tmp_path / "server" / "artifacts"),
            "--workers",
            "1",
        ],
        cwd=db.parent,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"mlflow server did not start: {proc.stderr.read()[-2000:]}")
        time.sleep(0.3)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_pipeline_against_tracking_server_and_dvc_remote(project, mlflow_server, tmp_path):
    init_git_dvc(project)
    env = cli_env(MLFLOW_TRACKING_URI=mlflow_server)
    dvc = [sys.executable, "-m", "dvc"]

    def sh(*cmd, timeout=300):
        proc = subprocess.run(list(cmd), cwd=project, env=env, capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc

    sh(*dvc, "repro", "register", timeout=600)
    summary = json.loads((project / "models" / "train_run.json").read_text())

    # everything went to the server: the run with its epoch metrics, and the registered champion
    import mlflow

    client = mlflow.MlflowClient(mlflow_server, registry_uri=mlflow_server)
    run = client.get_run(summary["run_id"])
    assert run.info.status == "FINISHED" and "val_acc" in run.data.metrics
    assert len(client.get_metric_history(run.info.run_id, "val_loss")) == summary["epochs"]
    registration = json.loads((project / "models" / "registration.json").read_text())
    name = registration["model_name"]
    mv = client.get_model_version_by_alias(name, "champion")
    assert mv.run_id == summary["run_id"]
    # and nothing to the project's own sqlite store
    local = project_client(project)
    assert local.search_runs([e.experiment_id for e in local.search_experiments()]) == []

    # the DVC remote round-trips data and model
    remote = tmp_path / "dvc-remote"
    sh(*dvc, "remote", "add", "-d", "team", str(remote))
    sh(*dvc, "push")
    before = {"data": _digest(project / "data" / "prepared"), "model": _digest(project / "models" / "model")}
    assert before["data"] and before["model"]
    shutil.rmtree(project / "data" / "prepared")
    shutil.rmtree(project / "models" / "model")
    shutil.rmtree(project / ".dvc" / "cache")
    sh(*dvc, "pull")
    after = {"data": _digest(project / "data" / "prepared"), "model": _digest(project / "models" / "model")}
    assert after == before
    assert sh(*dvc, "status", "register").stdout.strip().endswith("Data and pipelines are up to date.")
