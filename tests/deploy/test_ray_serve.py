"""server=ray on one local Ray instance (tests/deploy/conftest.py): scale out under load and back
when idle, every row answered reaches the prediction log, every replica follows the alias, and
SIGTERM drains. Slow: each replica loads torch and the model (~8 s here)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from serving_helpers import make_model, register_versions

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

BODY = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [[1, 2, 3, 4], [0, 1, 0, 1]]}]}


def running_replicas(app: str) -> int:
    from ray import serve

    status = serve.status().applications.get(app)
    if status is None:
        return 0
    return status.deployments["AiinfraServer"].replica_states.get("RUNNING", 0)


def wait_for(what: str, predicate, timeout: float, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Load:
    """Closed-loop clients on the Ray proxy; every answer recorded (status, replica, version, rows)."""

    def __init__(self, url: str, clients: int):
        self.url, self.clients = url, clients
        self.answers: list[tuple[int, str, str]] = []
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                try:
                    r = client.post(self.url, json=BODY)
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                if r.status_code != 200:
                    self.failures.append(f"{r.status_code} {r.text[:200]}")
                    continue
                self.answers.append((r.status_code, r.headers["x-aiinfra-replica"], r.json()["model_version"]))

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)


@pytest.fixture
def ray_project(tmp_path, mlflow_db_template):
    root = tmp_path / "ray-project"
    shutil.copytree(Path(__file__).resolve().parents[2] / "conf", root / "conf")
    shutil.copy(mlflow_db_template, root / "mlflow.db")
    dirs = [make_model(tmp_path / f"v{i}" / "model", seed=i) for i in (1, 2)]
    uri = f"sqlite:///{root / 'mlflow.db'}"
    versions = register_versions(uri, "ray-model", dirs, root / "mlartifacts")
    import mlflow

    mlflow.MlflowClient(uri, uri).set_registered_model_alias("ray-model", "champion", versions[0])
    return root, uri, versions


def test_scales_out_and_in_logs_every_row_and_follows_the_champion(ray_serve, ray_project, monkeypatch):
    import mlflow
    from ray import serve

    from aiinfra.runner import load_config
    from aiinfra.serving.predlog import read_predictions
    from aiinfra.serving.ray_server import application

    port, _ = ray_serve
    root, uri, versions = ray_project
    monkeypatch.chdir(root)
    log_dir = root / "logs" / "ray-predictions"
    cfg = load_config(
        [
            "server=ray",
            "server.model_uri=models:/ray-model@champion",
            f"tracking.uri={uri}",
            f"server.log_dir={log_dir}",
            "server.log_flush_interval_s=0.2",
            "server.reload_interval_s=0.5",
            "server.replica_cpus=0.5",
            "server.autoscaling.min_replicas=1",
            "server.autoscaling.max_replicas=2",  # two prove the scale-out; a third only costs a torch load
            "server.autoscaling.target_ongoing_requests=2",
            "server.autoscaling.upscale_delay_s=0.5",
            "server.autoscaling.downscale_delay_s=3",
            "server.autoscaling.look_back_period_s=1",
            "server.access_log=null",
        ]
    )
    serve.run(application(cfg, str(root / "metrics")), name="scaling", route_prefix="/", blocking=False)
    url = f"http://127.0.0.1:{port}/v2/models/ray-model/infer"
    wait_for("the first replica", lambda: running_replicas("scaling") >= 1, 120)
    try:
        with Load(url, clients=12) as load:
            wait_for("a second replica", lambda: running_replicas("scaling") >= 2, 120)
            # the second replica answers (not only exists)
            wait_for("answers from 2 replicas", lambda: len({a[1] for a in load.answers[-400:]}) >= 2, 60)
            mlflow.MlflowClient(uri, uri).set_registered_model_alias("ray-model", "champion", versions[1])
            mark = len(load.answers)

            def all_on_new_version():
                recent = load.answers[mark:]
                # from some point on, every replica that answers answers with the new champion
                replicas = running_replicas("scaling")
                tail = recent[-300:]
                return (
                    len(tail) == 300
                    and {a[2] for a in tail} == {versions[1]}
                    and len({a[1] for a in tail}) >= min(replicas, 2)
                )

            wait_for("every replica on the new champion", all_on_new_version, 60)
            served_by = {a[1] for a in load.answers}
        assert not load.failures, load.failures[:5]
        wait_for("scale-in to one replica", lambda: running_replicas("scaling") == 1, 90)
        answered_rows = 2 * len(load.answers)
        # the stopped replicas flushed their logs when they shut down; the live one within 0.2 s
        logged = wait_for(
            "every answered row in the prediction log",
            lambda: (n := read_predictions(log_dir).num_rows) == answered_rows and n,
            30,
        )
        assert logged == answered_rows
        writers = {p.name.split("-")[2] for p in log_dir.rglob("part-*.parquet")}  # part-<time>-<pid>-<rand>
        assert len(writers) >= 2 and len(served_by) >= 2
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert "aiinfra_predictions_total" in metrics
    finally:
        serve.delete("scaling")


DRIVER = """
import sys
from aiinfra.runner import load_config, setup_logging
from aiinfra.serving.ray_server import serve_ray
setup_logging()
sys.exit(serve_ray(load_config(sys.argv[1:])))
"""


def test_sigterm_drains_in_flight_requests(ray_serve, deploy_project, tmp_path):
    """A real driver process on the session's Ray cluster: SIGTERM while requests wait in the
    batcher (max_wait_ms=300): every one is answered, logged, and the process exits 0."""
    port, gcs = ray_serve
    log_dir = tmp_path / "drain-log"
    args = [
        "server=ray",
        f"server.model_uri={deploy_project / 'models' / 'model'}",
        f"server.address={gcs}",
        f"server.port={port}",
        "server.app_name=drain",
        "server.route_prefix=/drain",
        "server.autoscale=false",
        "server.replica_cpus=0.5",
        "server.max_wait_ms=300",
        "server.max_batch_size=1000",
        f"server.log_dir={log_dir}",
        "server.log_flush_interval_s=60",  # only the shutdown flush writes them
    ]
    out = open(tmp_path / "driver.out", "wb")  # noqa: SIM115
    env = {**os.environ, "AIINFRA_PROJECT_DIR": str(deploy_project), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, *args], cwd=deploy_project, env=env, stdout=out, stderr=out)
    try:
        wait_for(
            "the drain app",
            lambda: (
                proc.poll() is None and b"ready" in (tmp_path / "driver.out").read_bytes() or proc.poll() is not None
            ),
            120,
        )
        assert proc.poll() is None, (tmp_path / "driver.out").read_text()
        url = f"http://127.0.0.1:{port}/drain/v2/models/model/infer"
        ready = f"http://127.0.0.1:{port}/drain/v2/health/ready"
        wait_for("the proxy routing /drain", lambda: httpx.get(ready).status_code == 200, 30)
        probe = httpx.post(url, json=BODY)
        assert probe.status_code == 200, probe.text
        results: list[int] = []

        def call() -> None:
            results.append(httpx.post(url, json=BODY, timeout=60).status_code)

        threads = [threading.Thread(target=call) for _ in range(8)]
        for t in threads:
            t.start()
        time.sleep(0.15)  # the requests now wait in the replica's batcher
        proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(timeout=60)
        assert proc.wait(timeout=90) == 0, (tmp_path / "driver.out").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        out.close()
    assert Counter(results) == {200: 8}, results
    from aiinfra.serving.predlog import read_predictions

    assert read_predictions(log_dir).num_rows == 2 * (8 + 1)
    assert running_replicas("drain") == 0
