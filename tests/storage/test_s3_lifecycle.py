"""The whole lifecycle on a real S3 API (moto's server), every stage a real subprocess: the source
CSV, the prepared data, the MLflow artifacts, the prediction log and the retrain export live in
the bucket; the server (two workers) loads ``models:/...@champion`` from S3 artifacts and answers
as the model does offline; the monitor reads the log back from S3. The endpoint reaches every
process from ``storage.endpoint_url`` in conf/config.yaml alone: the environment holds only keys.
DVC pushes to and pulls from a remote in the same server."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from project_helpers import cli_env, free_port, init_git_dvc, run_cli
from s3_helpers import SECRET, Serve, keys

BUCKET = "lifecycle"
FEATURES = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "year"]


def _keys_only(s3_server) -> dict[str, str]:
    """Credentials, no endpoint: the endpoint must come from the config."""
    env = {k: v for k, v in s3_server.env.items() if k not in ("AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL")}
    return {**env, "AWS_SECRET_ACCESS_KEY": SECRET}


def _penguins() -> bytes:
    return resources.files("palmerpenguins").joinpath("data/penguins.csv").read_bytes()


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in frame.to_dict("records")]


def test_the_lifecycle_on_s3(project, s3_server, monkeypatch):
    s3_server.bucket(BUCKET)
    client = s3_server.client()
    client.put_object(Bucket=BUCKET, Key="raw/penguins.csv", Body=_penguins())
    # the endpoint in the project's config, not in any process's environment
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("MLFLOW_S3_ENDPOINT_URL", raising=False)
    conf = project / "conf" / "config.yaml"
    text = conf.read_text()
    assert "endpoint_url: null" in text
    conf.write_text(text.replace("endpoint_url: null", f"endpoint_url: {s3_server.endpoint_url}"))
    env = _keys_only(s3_server)
    common = [
        "source=csv",
        f"source.path=s3://{BUCKET}/raw/penguins.csv",
        "source.target=species",
        f"paths.prepared=s3://{BUCKET}/prepared",
        f"tracking.artifact_location=s3://{BUCKET}/mlartifacts",
        f"paths.feedback=s3://{BUCKET}/feedback",
        f"server.log_dir=s3://{BUCKET}/predictions",
        "register.gate.min=0.5",  # the gate is not what this test is about; 8 epochs on 344 rows
    ]
    for stage in ("prepare", "train", "evaluate", "register"):
        proc = run_cli(project, stage, *common, timeout=300, check=True, **env)
        assert SECRET not in proc.stdout + proc.stderr
    prepared = keys(s3_server, BUCKET, "prepared/")
    assert {"prepared/meta.json", "prepared/contract.json", "prepared/reference.parquet"} <= set(prepared)
    assert "prepared/train.parquet" in prepared or any(k.startswith("prepared/train.parquet/") for k in prepared)
    artifacts = keys(s3_server, BUCKET, "mlartifacts/")
    assert any(k.endswith("artifacts/model/weights.pt") for k in artifacts), artifacts
    assert not (project / "mlartifacts").exists()  # nothing on the local disk instead

    # serve the champion from S3 artifacts in two worker processes
    server = Serve(
        project,
        [*common, "server.workers=2", "server.log_flush_interval_s=0.3", "server.log_flush_rows=50"],
        env,
    )
    try:
        server.wait()
        from aiinfra.models.model_dir import Predictor

        predictor = Predictor.load(project / "models" / "model")
        frame = pd.read_csv(io.BytesIO(_penguins()))
        rows = frame[FEATURES].dropna().head(6).reset_index(drop=True)
        expected = predictor.predict_proba(predictor.encode(predictor.contract.check_frame(rows)))
        for _ in range(4):  # both workers answer some of them: each must have loaded the model from S3
            r = httpx.post(f"{server.url}/invocations", json={"dataframe_records": _records(rows)}, timeout=30)
            assert r.status_code == 200, r.text
            np.testing.assert_allclose(np.array(r.json()["probabilities"]), expected, rtol=0, atol=1e-6)
        # a drifted window: the monitor must see it and export it for retraining
        drifted = rows.sample(n=200, replace=True, random_state=0).reset_index(drop=True)
        drifted["bill_length_mm"] = 90.0
        drifted["body_mass_g"] = 9000.0
        for chunk in range(0, 200, 50):
            part = drifted.iloc[chunk : chunk + 50]
            r = httpx.post(f"{server.url}/invocations", json={"dataframe_records": _records(part)}, timeout=30)
            assert r.status_code == 200, r.text
    finally:
        rc = server.stop()
    assert rc == 0, server.text()[-4000:]
    assert SECRET not in server.text()
    parts = [k for k in keys(s3_server, BUCKET, "predictions/") if k.endswith(".parquet")]
    assert parts and all(k.split("/")[1].startswith("date=") and k.split("/")[2].startswith("hour=") for k in parts)
    logged = sum(
        pq.read_metadata(pa_buffer(client.get_object(Bucket=BUCKET, Key=k)["Body"].read())).num_rows for k in parts
    )
    assert logged == 4 * len(rows) + 200
    assert not (project / "logs" / "predictions").exists()

    # the monitor reads the log back from S3 and exports the drifted window to paths.feedback on S3
    proc = run_cli(
        project,
        "monitor",
        *common,
        "monitor.retrain.policy=retrain",
        "monitor.retrain.command=['{python}','-c','print(1)']",
        "monitor.retrain.export_window=true",
        "monitor.fail_on_drift=false",
        timeout=300,
        **env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verdict = json.loads((project / "reports" / "drift" / "verdict.json").read_text())
    assert verdict["drift_detected"] is True, verdict
    assert verdict["retrain"]["ok"] is True, verdict["retrain"]
    windows = keys(s3_server, BUCKET, "feedback/")
    assert len(windows) == 1 and windows[0].startswith("feedback/window-"), windows
    assert verdict["retrain"]["window"] == f"s3://{BUCKET}/{windows[0]}"
    exported = pq.read_table(pa_buffer(client.get_object(Bucket=BUCKET, Key=windows[0])["Body"].read()))
    assert exported.num_rows == logged
    assert SECRET not in proc.stdout + proc.stderr


def pa_buffer(data: bytes):
    import pyarrow as pa

    return pa.BufferReader(data)


def _tree_hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("endpoint", ["dvc-config", "environment"])
def test_a_dvc_remote_on_s3_pushes_and_pulls(tmp_path, s3_server, endpoint):
    """``dvc push``/``dvc pull`` against the S3 server: the endpoint either in DVC's remote config
    (``dvc remote modify ... endpointurl``) or only in AWS_ENDPOINT_URL (what aiinfra exports from
    storage.endpoint_url to ``aiinfra repro``'s DVC)."""
    root = tmp_path / "dvcproj"
    root.mkdir()
    init_git_dvc(root)
    data = root / "inputs"  # (data/ is git-ignored in a project: DVC refuses a .dvc file there)
    data.mkdir()
    (data / "penguins.csv").write_bytes(_penguins())
    (data / "notes.txt").write_text("mixed types, gaps\n")
    bucket = s3_server.bucket(f"dvc-{endpoint}")
    env = _keys_only(s3_server)
    if endpoint == "environment":
        env["AWS_ENDPOINT_URL"] = s3_server.endpoint_url

    def dvc(*args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "dvc", *args], cwd=root, env=cli_env(**env), capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, f"dvc {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        assert SECRET not in proc.stdout + proc.stderr
        return proc.stdout + proc.stderr

    dvc("add", "inputs")
    dvc("remote", "add", "-d", "s3remote", f"{bucket}/dvc")
    if endpoint == "dvc-config":
        dvc("remote", "modify", "s3remote", "endpointurl", s3_server.endpoint_url)
    before = _tree_hashes(data)
    dvc("push")
    pushed = keys(s3_server, bucket.removeprefix("s3://"), "dvc/")
    assert len(pushed) == 3, pushed  # two files and the directory's manifest
    shutil.rmtree(root / ".dvc" / "cache")
    shutil.rmtree(data)
    dvc("pull")
    assert _tree_hashes(data) == before


def test_mlflow_server_proxies_artifacts_to_s3(project, s3_server, tmp_path):
    """``mlflow server --artifacts-destination s3://...``: the clients (train, register, serve) hold
    no S3 keys at all; the tracking server writes the artifacts to the bucket."""
    s3_server.bucket("mlflow-proxy")
    port = free_port()
    server_env = cli_env(**s3_server.env)
    log = (tmp_path / "mlflow-server.log").open("wb")
    mlflow_server = subprocess.Popen(
        [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination", "s3://mlflow-proxy/mlartifacts",
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ],
        env=server_env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{uri}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert mlflow_server.poll() is None, (tmp_path / "mlflow-server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow server not up"
            time.sleep(0.5)
        no_keys = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
        common = ["source=penguins", f"tracking.uri={uri}", "register.gate.min=0.5", "trainer.max_epochs=2"]
        for stage in ("prepare", "train", "evaluate", "register"):
            run_cli(project, stage, *common, timeout=300, check=True, **no_keys)
        stored = keys(s3_server, "mlflow-proxy", "mlartifacts/")
        assert any(k.endswith("artifacts/model/weights.pt") for k in stored), stored
        assert not (project / "mlartifacts").exists()
        served = Serve(project, [*common, "server.prediction_log=false"], no_keys).wait()
        try:
            rows = pd.read_csv(io.BytesIO(_penguins()))[FEATURES].dropna().head(3)
            r = httpx.post(f"{served.url}/invocations", json={"dataframe_records": _records(rows)}, timeout=30)
            assert r.status_code == 200, r.text
            assert len(r.json()["predictions"]) == 3
        finally:
            assert served.stop() == 0, served.text()[-3000:]
    finally:
        mlflow_server.terminate()
        mlflow_server.wait(timeout=30)
        log.close()
