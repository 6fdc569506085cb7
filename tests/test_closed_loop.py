"""The closed loop, end to end with real parts: serve -> log -> labels to the feedback endpoint ->
detect drift -> retrain through DVC -> gate -> promote -> the running server hot-reloads and the
new champion answers."""

from __future__ import annotations

import json
import time
import urllib.request

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest

from project_helpers import dvc, init_git_dvc, run_cli, start_server


def _infer(base: str, name: str, row: np.ndarray, rid: str) -> tuple[dict, str]:
    body = {"id": rid, "inputs": [{"name": "input", "shape": [1, len(row)], "datatype": "FP32", "data": row.tolist()}]}
    req = urllib.request.Request(
        f"{base}/v2/models/{name}/infer", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read()), resp.headers["x-model-version"]


def _probabilities(answer: dict) -> np.ndarray:
    out = {o["name"]: o for o in answer["outputs"]}["probabilities"]
    return np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])


@pytest.mark.slow  # the whole loop for real: dvc repro twice, a server, the monitor (minutes)
def test_drift_triggers_retraining_and_the_new_champion_answers(project):
    from aiinfra.data.prepared import PreparedData
    from aiinfra.models.model_dir import Predictor

    init_git_dvc(project)
    dvc(project, "repro")
    assert json.loads((project / "models" / "registration.json").read_text())["version"] == "1"

    data = PreparedData.open(project / "data" / "prepared")
    frames = [data.read(s) for s in ("train", "val", "test")]
    rows = pd.concat(frames, ignore_index=True)
    shifted = rows[data.features].to_numpy(np.float32)
    shifted[:, :20] *= 1.6  # production drifts: 20 of 30 features scaled up
    labels = rows[data.target].to_numpy()

    server, base = start_server(project, "server.reload_interval_s=1", "server.log_flush_interval_s=0.5")
    try:
        ids = [f"req-{i}" for i in range(len(shifted))]
        versions = {_infer(base, "aiinfra-demo", row, rid)[1] for row, rid in zip(shifted, ids, strict=True)}
        assert versions == {"1"}
        # the labels arrive later, sent to the server by request id (it stores them for the monitor)
        body = {"labels": [{"request_id": rid, "label": y} for rid, y in zip(ids, labels.tolist(), strict=True)]}
        req = urllib.request.Request(
            f"{base}/v2/models/aiinfra-demo/feedback",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert json.loads(resp.read())["accepted"] == len(ids)
        feedback = project / "logs" / "feedback"
        log_dir = project / "logs" / "predictions"
        deadline = time.monotonic() + 30
        while not log_dir.is_dir() or ds.dataset(log_dir, partitioning="hive").count_rows() < len(ids):
            assert time.monotonic() < deadline, "the prediction log was not flushed"
            time.sleep(0.3)

        old = Predictor.load(project / "models" / "model")
        old_accuracy = float((old.predict(shifted) == labels).mean())

        monitor = run_cli(
            project,
            "monitor",
            f"monitor.feedback={feedback}",
            "monitor.retrain.policy=retrain",
            "monitor.report=false",
            "monitor.report_dir=reports/drift-production",
            timeout=900,
        )
        assert monitor.returncode == 1, monitor.stderr[-3000:]  # 1: drift detected
        verdict = json.loads((project / "reports" / "drift-production" / "verdict.json").read_text())
        assert verdict["drift_detected"] and verdict["retrain"]["ok"], verdict.get("retrain")
        window = pd.read_parquet(project / verdict["retrain"]["window"])
        assert len(window) == len(ids) and data.target in window.columns

        registration = json.loads((project / "models" / "registration.json").read_text())
        assert registration["version"] == "2" and registration["alias_moved"], registration
        meta = json.loads((project / "data" / "prepared" / "meta.json").read_text())
        assert meta["feedback_rows"] == len(ids)
        new = Predictor.load(project / "models" / "model")
        assert float((new.predict(shifted) == labels).mean()) > old_accuracy

        # the running server follows the alias without a restart and without failing a request
        deadline = time.monotonic() + 60
        while True:
            answer, version = _infer(base, "aiinfra-demo", shifted[0], "after-reload")
            if version == "2":
                break
            assert time.monotonic() < deadline, "the server did not reload the new champion"
            time.sleep(0.5)
        np.testing.assert_allclose(_probabilities(answer)[0], new.predict_proba(shifted[:1])[0], atol=1e-5)
        audit = [json.loads(line) for line in (project / "logs" / "audit.jsonl").read_text().splitlines()]
        assert [e["version"] for e in audit if e["action"] == "alias_moved"] == ["1", "2"]
    finally:
        server.terminate()
        server.wait(timeout=60)
