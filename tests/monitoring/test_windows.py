"""Windows of the prediction log (last hours, a range, last rows) and bad inputs."""

from __future__ import annotations

import datetime as dt

import pyarrow.compute as pc
import pytest

import drift_scenarios as scenarios
from aiinfra.errors import AiinfraError
from aiinfra.monitoring import windows
from aiinfra.monitoring.drift_monitor import run_once
from aiinfra.monitoring.schema import WindowConfig

START = dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.UTC)  # as in conftest.py


def _window(**kw):
    return WindowConfig(**kw)


def _stamps(cur):
    return cur.column("timestamp").cast("int64").to_numpy()


@pytest.fixture
def logged(mon):
    mon.log(rows=3000, hours=3)  # 10:00-13:00 UTC, three hourly partitions
    return mon


def test_whole_log(logged):
    cur = windows.open_log(logged.logs, _window())
    assert cur.count_rows() == 3000
    assert {"request_id", "timestamp", "model_version", "f00", "prediction", "score"} <= set(cur.names)


def test_last_hours_counts_back_from_now(logged):
    now = START + dt.timedelta(hours=3)
    cur = windows.open_log(logged.logs, _window(last_hours=1), now=now)
    ts = _stamps(cur)
    cutoff = int((now - dt.timedelta(hours=1)).timestamp() * 1e6)
    assert 0 < cur.count_rows() < 3000
    assert ts.min() >= cutoff
    whole = _stamps(windows.open_log(logged.logs, _window()))
    assert cur.count_rows() == int((whole >= cutoff).sum())


def test_range(logged):
    cur = windows.open_log(logged.logs, _window(start="2026-11-28T10:30:00", end="2026-11-28T11:30:00Z"))
    ts = _stamps(cur)
    lo, hi = (int(dt.datetime(2026, 11, 28, h, 30, tzinfo=dt.UTC).timestamp() * 1e6) for h in (10, 11))
    whole = _stamps(windows.open_log(logged.logs, _window()))
    assert cur.count_rows() == int(((whole >= lo) & (whole < hi)).sum()) > 0
    assert ts.min() >= lo and ts.max() < hi


def test_last_rows_takes_the_newest(logged):
    cur = windows.open_log(logged.logs, _window(last_rows=500))
    assert cur.count_rows() == 500
    whole = _stamps(windows.open_log(logged.logs, _window()))
    assert _stamps(cur).min() == sorted(whole)[-500]
    # the same rows come out of every column read (the filter is applied per column)
    assert len(cur.column("f03")) == 500
    assert pc.min(cur.column("timestamp")).as_py() is not None


def test_now_can_be_pinned_by_env(logged, monkeypatch):
    monkeypatch.setenv("AIINFRA_NOW", "2026-11-28T12:00:00Z")
    cfg = logged.cfg("monitor.window.last_hours=1")
    cur = windows.open_current(cfg)
    ts = _stamps(cur)
    assert ts.min() >= int(dt.datetime(2026, 11, 28, 11, tzinfo=dt.UTC).timestamp() * 1e6)


def test_a_bad_pinned_now_is_one_clear_error(logged, monkeypatch):
    monkeypatch.setenv("AIINFRA_NOW", "noon")
    with pytest.raises(AiinfraError, match="AIINFRA_NOW='noon' is not an ISO-8601 time"):
        windows.open_current(logged.cfg("monitor.window.last_hours=1"))


def test_missing_log_names_the_directory_and_the_fix(mon):
    with pytest.raises(AiinfraError) as info:
        windows.open_log(mon.logs, _window())
    assert str(mon.logs) in str(info.value) and "monitor.current" in str(info.value)


def test_files_parquet_and_csv(mon, tmp_path):
    import pandas as pd

    df = pd.DataFrame({"a": [1.0, 2.0, None], "b": ["x", "y", "z"]})
    df.to_csv(tmp_path / "c.csv", index=False)
    df.to_parquet(tmp_path / "c.parquet")
    for name in ("c.csv", "c.parquet"):
        cur = windows.open_file(tmp_path / name)
        assert cur.count_rows() == 3 and cur.column("a").null_count == 1
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(AiinfraError, match="cannot read current data"):
        windows.open_file(tmp_path / "broken.parquet").count_rows()
    with pytest.raises(AiinfraError, match="not found"):
        windows.open_file(tmp_path / "nope.parquet")


def test_reads_what_the_servers_prediction_log_writes(mon, aiinfra_plugin_manager):
    """The serving side's own writer (aiinfra.serving.predlog) against this reader: the contract."""
    import numpy as np

    from aiinfra.serving import predlog  # aiinfra's own module: an import error fails, never skips

    mon.reference(rows=2000)
    names = scenarios.feature_names()
    cols = scenarios.make("mean_shift", 3000, seed=5)
    x = np.column_stack([cols[n] for n in names])
    plog = predlog.PredictionLog(mon.logs, names, flush_rows=1000, flush_interval_s=60)
    for i in range(0, 3000, 100):
        plog.append(
            f"req-{i}", "demo", "3", x[i : i + 100], (x[i : i + 100, 0] > 0).astype(np.int64), np.full(100, 0.9)
        )
    plog.close()
    verdict = run_once(mon.cfg("monitor.window.last_hours=1", "monitor.report=false"))
    assert verdict["rows"]["current"] == 3000
    assert verdict["drift_detected"] and verdict["drifted_columns"] == 10
    assert verdict["models"] == {"model_name": ["demo"], "model_version": ["3"]}
    assert verdict["prediction"]["reference_column"] == "target" and verdict["prediction"]["score"] is not None


def test_a_damaged_log_file_is_left_out_with_a_warning(logged, caplog):
    import pyarrow.parquet as pq

    first = sorted(logged.logs.rglob("part-*.parquet"))[0]
    rows_lost = pq.read_metadata(first).num_rows
    first.write_bytes(first.read_bytes()[:100])  # truncated, as by a full disk
    cur = windows.open_log(logged.logs, _window())
    assert cur.count_rows() == 3000 - rows_lost
    assert len(cur.skipped) == 1 and str(first) in cur.skipped[0]
    assert "skipped 1 unreadable file" in caplog.text
