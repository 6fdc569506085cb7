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


def _drive(log, n, x):
    for i in range(n):
        log.append(f"r{i}", "m", "1", x, np.array([0]), np.array([0.5]))
        log._retry_at = 0.0  # drive the retries by hand, past the backoff
        log.flush()


def test_drop_policy_drops_the_oldest_counted_and_recovers(tmp_path):
    blocker = tmp_path / "log"
    blocker.write_text("a file where the log directory should be")  # every write fails, even as root
    log = PredictionLog(blocker, ["a"], flush_rows=1, flush_interval_s=3600, policy="drop", buffer_rows=20)
    log._stop.set()
    _drive(log, 25, np.array([[1.0]], np.float32))
    assert log.failing and log.rows_dropped == 5 and log.pending_rows == 20  # pending: honest, not zero
    assert log.health()["state"] == "degraded" and not log.refusing
    blocker.unlink()
    log.close()
    assert not log.failing and read_predictions(blocker).num_rows + log.rows_dropped == 25


def test_block_policy_keeps_every_row_and_refuses_when_full(tmp_path):
    blocker = tmp_path / "log"
    blocker.write_text("x")
    log = PredictionLog(blocker, ["a"], flush_rows=1, flush_interval_s=3600, policy="block", buffer_rows=20)
    log._stop.set()
    _drive(log, 25, np.array([[1.0]], np.float32))
    assert log.rows_dropped == 0 and log.pending_rows == 25 and log.refusing
    blocker.unlink()
    log.close()
    assert read_predictions(blocker).num_rows == 25 and not log.refusing


def test_spool_policy_spills_and_replays(tmp_path):
    blocker, spool = tmp_path / "log", tmp_path / "spool"
    blocker.write_text("x")
    log = PredictionLog(blocker, ["a"], flush_rows=1, flush_interval_s=3600, policy="spool", spool_dir=spool)
    log._stop.set()
    _drive(log, 7, np.array([[1.0]], np.float32))
    assert log.spooled_rows == 7 and log.pending_rows == 0 and read_predictions(spool).num_rows == 7
    blocker.unlink()
    log.close()  # the directory is back: the spool is moved into it
    assert read_predictions(blocker).num_rows == 7 and log.spooled_rows == 0
    assert not list(spool.rglob("part-*.parquet"))


def test_backoff_doubles_and_one_line_per_state_change(tmp_path, caplog):
    blocker = tmp_path / "log"
    blocker.write_text("x")
    log = PredictionLog(blocker, ["a"], flush_rows=1, flush_interval_s=4, policy="drop")
    log._stop.set()
    waits = []
    for i in range(8):
        log.append(f"r{i}", "m", "1", np.array([[1.0]], np.float32), np.array([0]), np.array([0.5]))
        log.flush()
        waits.append(log._backoff)
    assert waits[:3] == [0.2, 0.4, 0.8] and waits[-1] == log.retry_max_s == 4
    blocker.unlink()
    log.close()
    lines = [r.getMessage() for r in caplog.records if "prediction log: writes to" in r.getMessage()]
    assert len(lines) == 2 and "fail" in lines[0] and "work again" in lines[1]


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
