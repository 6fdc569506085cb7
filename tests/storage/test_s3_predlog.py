"""The prediction log on S3 (``server.log_dir=s3://...``): parts are whole objects under their
final names (one PUT each, no temporary names left), read back by ``read_predictions`` and the
monitor's window; retention deletes old date partitions in the bucket and audits each once."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aiinfra.monitoring import windows
from aiinfra.monitoring.schema import WindowConfig
from aiinfra.serving import retention
from aiinfra.serving.predlog import PredictionLog, read_predictions
from aiinfra.serving.schema import HttpServerConfig, LogPrivacyConfig
from aiinfra.storage import urls
from s3_helpers import keys, s3_env  # noqa: F401 - a fixture


@pytest.mark.usefixtures("s3_env")
def test_parts_are_whole_objects_read_back_by_the_reader_and_the_monitor(s3_server):
    root = s3_server.bucket("predlog-parts") + "/predictions"
    log = PredictionLog(root, ["a", "b"], flush_rows=10**6, flush_interval_s=3600)
    log.append("r1", "m", "1", np.array([[1, 2], [3, 4]], np.float32), np.array([0, 1]), np.array([0.6, 0.9]))
    log.append("r2", "m", "1", np.array([[5, 6]], np.float32), np.array([1]), np.array([0.7]))
    assert log.close() == 3 and not log.failing
    stored = keys(s3_server, "predlog-parts")
    assert len(stored) == 1 and stored[0].startswith("predictions/date=") and stored[0].endswith(".parquet")
    assert "/hour=" in stored[0] and not any(k.rsplit("/", 1)[-1].startswith(".") for k in stored)
    table = read_predictions(root)
    assert table.num_rows == 3 and table.column("request_id").to_pylist() == ["r1", "r1", "r2"]
    assert set(table.column_names) >= {"a", "b", "prediction", "score", "date", "hour"}
    current = windows.open_log(root, WindowConfig())
    assert current.count_rows() == 3 and sorted(current.column("a").to_pylist()) == [1.0, 3.0, 5.0]
    assert current.description.startswith("prediction log s3://predlog-parts/predictions")


@pytest.mark.usefixtures("s3_env")
def test_retention_deletes_old_partitions_in_the_bucket(s3_server, tmp_path):
    base = s3_server.bucket("predlog-retention")
    pred, fb = f"{base}/predictions", f"{base}/feedback"
    for d in ("2026-11-01", "2026-11-20", "2026-11-21"):
        fs, inner = urls.arrow_filesystem(f"{pred}/date={d}/hour=00/part-1.parquet")
        pq.write_table(pa.table({"x": [1, 2]}), inner, filesystem=fs)
    urls.write_bytes(f"{fb}/date=2026-10-01/part-1.parquet", b"")
    server = HttpServerConfig(log_privacy=LogPrivacyConfig(retention_days=10))
    server.log_dir, server.feedback_dir = pred, fb
    cfg = SimpleNamespace(server=server, paths=SimpleNamespace(logs=str(tmp_path / "logs")))
    now = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
    deleted = retention.sweep(cfg, now=now)
    assert sorted(d["path"] for d in deleted) == [
        f"{fb}/date=2026-10-01",
        f"{pred}/date=2026-11-01",
        f"{pred}/date=2026-11-20",
    ]
    assert {d["path"].rsplit("/", 1)[-1]: d["rows"] for d in deleted if "predictions" in d["path"]} == {
        "date=2026-11-01": 2,
        "date=2026-11-20": 2,
    }
    assert keys(s3_server, "predlog-retention") == ["predictions/date=2026-11-21/hour=00/part-1.parquet"]
    assert (tmp_path / "logs" / "audit.jsonl").read_text().count("log_partition_deleted") == 3
    assert retention.sweep(cfg, now=now) == []  # nothing twice
