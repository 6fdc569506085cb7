"""Serving usage for ``aiinfra costs``: each server process appends its CPU, memory and prediction
counts to ``<paths.logs>/usage/serving-<host>-<pid>.jsonl`` every ``server.usage_interval_s`` and at
shutdown (a real ``aiinfra serve``; the writer in-process on the server's real metrics)."""

from __future__ import annotations

import logging
import socket
import time
from datetime import datetime
from types import SimpleNamespace

import httpx
import orjson
import pytest

from aiinfra.config.checks import run_checks
from aiinfra.errors import ConfigError
from aiinfra.serving.metrics import ServerMetrics
from aiinfra.serving.routes import ENDPOINTS
from aiinfra.serving.schema import HttpServerConfig
from aiinfra.serving.usage import UsageWriter, prediction_routes

KEYS = {"time", "host", "pid", "model_name", "model_version", "model_uri", "usage", "predictions", "requests"}


def _rows(n: int) -> dict:
    data = [0.1 * i for i in range(n)]
    return {"inputs": [{"name": c, "shape": [n], "datatype": "FP32", "data": data} for c in "abcd"]}


def test_a_server_writes_its_usage_periodically_and_at_shutdown(start_server, model_dir, tmp_path):
    logs = tmp_path / "logs"
    srv = start_server([f"server.model_uri={model_dir}", "server.usage_interval_s=0.5", f"paths.logs={logs}"])
    with httpx.Client(base_url=srv.url) as client:
        for _ in range(5):
            assert client.post("/v2/models/model/infer", json=_rows(3)).status_code == 200
        assert client.get("/v2/health/ready").status_code == 200  # not a prediction
        time.sleep(1.3)  # two periodic lines at least
        assert client.post("/invocations", json={"inputs": {c: [1.0, 2.0] for c in "abcd"}}).status_code == 200
    stopped_at = time.time()
    assert srv.stop() == 0, srv.text()
    path = logs / "usage" / f"serving-{socket.gethostname()}-{srv.proc.pid}.jsonl"
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert len(lines) >= 3, lines
    last = lines[-1]
    assert set(last) == KEYS
    assert last["predictions"] == 5 * 3 + 2 and last["requests"] == 6
    assert datetime.fromisoformat(last["time"]).timestamp() >= stopped_at  # written at shutdown, after SIGTERM
    assert last["pid"] == srv.proc.pid and last["model_name"] == "model" and last["model_version"] == "local"
    assert last["model_uri"] == str(model_dir)
    assert last["usage"]["cpu_s"] > 0 and last["usage"]["peak_rss_bytes"] > 0 and last["usage"]["wall_s"] > 1
    # cumulative: a periodic line before the last request counted the first five
    assert [line["predictions"] for line in lines] == sorted(line["predictions"] for line in lines)
    assert any(line["predictions"] == 15 and line["requests"] == 5 for line in lines[:-1]), lines


def test_the_writer_follows_the_served_model_and_counts_only_predictions(tmp_path):
    metrics = ServerMetrics()
    holder = SimpleNamespace(current=SimpleNamespace(name="m", version="1", uri="models:/m/1"))
    metrics.set_model("m", "1", "models:/m/1")
    writer = UsageWriter(tmp_path, metrics, holder, prediction_routes(ENDPOINTS), interval_s=60)
    metrics.observe_batch(7, 0.001)
    metrics.observe_request("/v2/models/{name}/infer", "POST", 200, 0.01)
    metrics.observe_request("/v2/models/{name}/infer", "POST", 422, 0.01)  # a refused prediction request counts
    metrics.observe_request("/v2/health/ready", "GET", 200, 0.01)
    metrics.observe_request("/metrics", "GET", 200, 0.01)
    assert writer.write()
    holder.current = SimpleNamespace(name="m", version="2", uri="models:/m/2")  # a hot reload
    metrics.set_model("m", "2", "models:/m/2")
    metrics.observe_batch(3, 0.001)
    metrics.observe_request("/invocations", "POST", 200, 0.01)
    assert writer.close()
    first, second = (orjson.loads(line) for line in writer.path.read_bytes().splitlines())
    assert (first["model_version"], first["predictions"], first["requests"]) == ("1", 7, 2)
    assert (second["model_version"], second["model_uri"], second["predictions"], second["requests"]) == (
        "2",
        "models:/m/2",
        10,
        3,
    )
    assert writer.path.parent == (tmp_path / "usage").resolve()


def test_a_failing_usage_write_warns_once_and_never_raises(tmp_path, caplog):
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the usage directory should be")
    metrics = ServerMetrics()
    holder = SimpleNamespace(current=SimpleNamespace(name="m", version="1", uri="u"))
    writer = UsageWriter(blocker, metrics, holder)
    with caplog.at_level(logging.WARNING, logger="aiinfra.serving"):
        assert writer.write() is False
        assert writer.close() is False
    warnings = [r for r in caplog.records if "serving usage not written" in r.getMessage()]
    assert len(warnings) == 1 and writer.lines == 0


def test_usage_interval_must_be_positive():
    with pytest.raises(ConfigError, match="server.usage_interval_s: must be > 0, got 0"):
        run_checks(HttpServerConfig(usage_interval_s=0), "server")
