"""The prediction log's disk fails and comes back, under each ``server.log_failure_policy``.

The log directory's parent is replaced by a regular file (a failure that holds even for root, unlike
permission bits), requests keep coming, then the directory is restored. After recovery, under every
policy: rows logged + rows counted as dropped == rows answered; one log line when writes start
failing and one when they work again (not one per retry); the pending-rows gauge stays honest
during the failure and readiness reports the degraded log.
"""

from __future__ import annotations

import os

import httpx
import pytest

from aiinfra.serving.predlog import read_predictions
from fault_helpers import INFER, infer_body, metric, server_with_log_dir, wait_for

BUFFER = 40


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["block", "spool", "drop"])
def test_log_disk_fails_then_comes_back(serving_project, model_dir, tmp_path, policy):
    disk = tmp_path / "disk"
    disk.mkdir()
    log_dir = disk / "predictions"
    overrides = [
        f"server.model_uri={model_dir}",
        f"server.log_failure_policy={policy}",
        "server.log_flush_rows=10",
        f"server.log_buffer_rows={BUFFER}",
        "server.log_flush_interval_s=0.2",
        "server.access_log=null",
    ]
    if policy == "spool":
        overrides.append(f"server.log_spool_dir={tmp_path / 'spool'}")
    srv = server_with_log_dir(serving_project, log_dir, overrides, name=f"disk-{policy}").start()
    answered = 0
    statuses: dict[int, int] = {}
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as client:

            def send(i: int) -> httpx.Response:
                nonlocal answered
                r = client.post(INFER, content=infer_body(f"{policy}-{i}"))
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if r.status_code == 200:
                    answered += 1
                return r

            for i in range(20):
                assert send(i).status_code == 200
            wait_for(lambda: metric(srv.url, "aiinfra_prediction_log_pending_rows") == 0)
            # the disk goes away: the log's parent directory becomes a regular file
            os.rename(disk, tmp_path / "disk-away")
            disk.write_text("not a directory")
            i = 20
            while i < 2000:
                r = send(i)
                i += 1
                if policy == "block" and r.status_code == 503:
                    assert r.headers["retry-after"] and "log_failure_policy=block" in r.json()["error"]
                    if statuses[503] >= 5:
                        break
                if policy != "block" and i % 20 == 0:
                    gone = metric(srv.url, "aiinfra_prediction_log_dropped_rows_total")
                    spooled = metric(srv.url, "aiinfra_prediction_log_spooled_rows")
                    if (policy == "drop" and gone > 0) or (policy == "spool" and spooled >= 2 * BUFFER):
                        break
            ready = client.get("/v2/health/ready")
            health = ready.json()["prediction_log"]
            assert health["state"] == "degraded" and health["policy"] == policy, ready.text
            if policy == "block":
                # readiness follows the predictions: both refuse while the buffer is full
                assert ready.status_code == 503
                # honest gauge: the rows waiting for the disk are still counted
                assert metric(srv.url, "aiinfra_prediction_log_pending_rows") >= BUFFER
            else:
                assert ready.status_code == 200 and statuses.get(503, 0) == 0
            # the disk comes back
            disk.unlink()
            os.rename(tmp_path / "disk-away", disk)
            wait_for(
                lambda: (
                    metric(srv.url, "aiinfra_prediction_log_pending_rows") == 0
                    and metric(srv.url, "aiinfra_prediction_log_degraded") == 0
                ),
                timeout=60,
            )
            assert client.get("/v2/health/ready").json()["prediction_log"]["state"] == "ok"
            for k in range(5):  # served normally again
                assert send(5000 + k).status_code == 200
            wait_for(lambda: metric(srv.url, "aiinfra_prediction_log_pending_rows") == 0)
            dropped = metric(srv.url, "aiinfra_prediction_log_dropped_rows_total")
    finally:
        rc = srv.stop()
    assert rc == 0, srv.text()
    logged = read_predictions(log_dir).num_rows
    assert logged + dropped == answered, (logged, dropped, answered, statuses)
    if policy == "drop":
        assert dropped > 0
    else:
        assert dropped == 0
    out = srv.text()
    assert out.count("prediction log: writes to") == 2, out  # "... fail", then "... work again"
    assert out.count("work again") == 1
    if policy == "spool":
        assert "replayed" in out and not list((tmp_path / "spool").rglob("part-*.parquet"))
