"""The prediction-log writer on its own: schema, partitions, feature changes, failing disk."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from aiinfra.serving.predlog import PredictionLog, read_predictions


def test_schema_partitions_and_a_feature_change(tmp_path):
    log = PredictionLog(tmp_path, ["a", "b"], flush_rows=10**6, flush_interval_s=3600)
    log.append("r1", "m", "1", np.array([[1, 2], [3, 4]], np.float32), np.array([0, 1]), np.array([0.6, 0.9]))
    # a reload to a version with other features: its rows go to a part file of their own
    log.append("r2", "m", "2", np.array([[5, 6, 7]], np.float32), np.array([1]), np.array([0.7]), ["a", "b", "c"])
    assert log.close() == 3
    parts = sorted(tmp_path.glob("date=*/hour=*/part-*.parquet"))
    assert len(parts) == 2 and not list(tmp_path.rglob(".*.tmp"))
    schemas = sorted([pq.read_schema(p).names for p in parts], key=len)
    assert schemas[0] == ["request_id", "timestamp", "model_name", "model_version", "a", "b", "prediction", "score"]
    assert schemas[1][4:7] == ["a", "b", "c"]
    first = pq.read_table(next(p for p in parts if len(pq.read_schema(p).names) == 8)).to_pydict()
    assert first["request_id"] == ["r1", "r1"] and first["a"] == [1.0, 3.0] and first["prediction"] == [0, 1]
    assert str(pq.read_schema(parts[0]).field("timestamp").type) == "timestamp[us, tz=UTC]"
    assert read_predictions(tmp_path).num_rows == 3


def test_failed_write_is_retried_then_bounded(tmp_path):
    blocker = tmp_path / "log"
    blocker.write_text("a file where the log directory should be")  # every write fails
    log = PredictionLog(blocker, ["a"], flush_rows=1, flush_interval_s=3600)
    log._stop.set()  # drive flushes by hand
    x = np.array([[1.0]], np.float32)
    for i in range(25):
        log.append(f"r{i}", "m", "1", x, np.array([0]), np.array([0.5]))
        log.flush()
    assert 0 < log.rows_dropped < 25 and log.pending_rows <= 20
    blocker.unlink()
    log.close()
    assert read_predictions(blocker).num_rows + log.rows_dropped == 25


def test_one_append_per_batch_keeps_each_rows_request_id(tmp_path):
    """The server appends once per forward pass: several requests' rows with their ids and counts."""
    import pytest

    log = PredictionLog(tmp_path, ["a"], flush_rows=10**6, flush_interval_s=3600)
    x = np.array([[1], [2], [3], [4]], np.float32)
    log.append(
        ["r1", "r2", "r3"], "m", "1", x, np.array([0, 1, 1, 0]), np.array([0.5, 0.6, 0.7, 0.8]), counts=[1, 2, 1]
    )
    log.append("r4", "m", "1", x[:1], np.array([1]), np.array([0.9]))
    with pytest.raises(ValueError, match="counts"):
        log.append(["r5", "r6"], "m", "1", x, np.array([0] * 4), np.array([0.5] * 4), counts=[1, 1])
    assert log.close() == 5
    table = read_predictions(tmp_path).to_pydict()
    assert table["request_id"] == ["r1", "r2", "r2", "r3", "r4"]
    assert table["a"] == [1.0, 2.0, 3.0, 4.0, 1.0] and table["prediction"] == [0, 1, 1, 0, 1]
