"""The prediction log: every predicted row, as Parquet, for the monitor.

Contract (the monitor reads it; change it only together with the monitor)::

    <log_dir>/date=YYYY-MM-DD/hour=HH/part-<UTC time>-<pid>-<random>.parquet   (hive partitioning)

    request_id     string
    timestamp      timestamp[us, tz=UTC]     when the row was predicted
    model_name     string
    model_version  string
    <feature>...   double, one column per model feature, named as Predictor.features
    prediction     the predicted class label (the training target's type)
    score          double, the predicted class's probability

One row per predicted row. Requests append in-memory chunks (a list append: nothing is written on
the request path); a background thread writes a part file when ``flush_rows`` rows are buffered or
``flush_interval_s`` after the oldest buffered row, and :meth:`PredictionLog.close` writes the rest.
Part files are written under a dot-name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

# at import, not in the writer thread: a first import there would hold the GIL for ~0.4 s under load
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

log = logging.getLogger(__name__)


class _Chunk:
    __slots__ = ("ids", "counts", "ts_us", "model_name", "model_version", "features", "x", "labels", "scores")

    def __init__(self, ids, counts, ts_us, model_name, model_version, features, x, labels, scores):
        self.features = features  # the model's feature list (shared, not copied): a reload may change it
        self.ids = ids  # the request ids of the rows, in order, each for counts[i] rows
        self.counts = counts
        self.ts_us = ts_us
        self.model_name = model_name
        self.model_version = model_version
        self.x = x
        self.labels = labels
        self.scores = scores


class PredictionLog:
    def __init__(
        self,
        log_dir: str | Path,
        features: list[str],
        *,
        flush_rows: int = 50_000,
        flush_interval_s: float = 10.0,
        on_written=None,
        on_error=None,
        on_dropped=None,
    ):
        self.dir = Path(log_dir)
        self.features = list(features)  # default for append() without features
        self.on_dropped = on_dropped
        self.rows_dropped = 0
        self.flush_rows = max(1, int(flush_rows))
        self.flush_interval_s = max(0.05, float(flush_interval_s))
        self.on_written = on_written
        self.on_error = on_error
        self._chunks: list[_Chunk] = []
        self._rows = 0
        self._oldest: float | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.rows_written = 0
        self.files_written = 0
        self._thread = threading.Thread(target=self._run, name="aiinfra-predlog", daemon=True)
        self._thread.start()

    @property
    def pending_rows(self) -> int:
        return self._rows

    def append(
        self,
        request_id: str | list[str],
        model_name: str,
        model_version: str,
        x: np.ndarray,
        labels: np.ndarray,
        scores: np.ndarray,
        features: list[str] | None = None,
        counts: list[int] | None = None,
    ) -> None:
        """Buffer the rows of ``x``: one request (``request_id`` a string) or a whole batch of them
        (``request_id`` a list, ``counts`` the rows of each, in the order of ``x``)."""
        if isinstance(request_id, str):
            ids, counts = [request_id], [x.shape[0]]
        else:
            ids = list(request_id)
            if counts is None or len(counts) != len(ids) or sum(counts) != x.shape[0]:
                raise ValueError("append: counts must give the rows of each request id and sum to len(x)")
        chunk = _Chunk(
            ids,
            counts,
            time.time_ns() // 1000,
            model_name,
            model_version,
            features if features is not None else self.features,
            x,
            labels,
            scores,
        )
        with self._lock:
            self._chunks.append(chunk)
            self._rows += x.shape[0]
            if self._oldest is None:
                self._oldest = time.monotonic()
            if self._rows >= self.flush_rows:
                self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=min(1.0, self.flush_interval_s))
            self._wake.clear()
            oldest = self._oldest
            due = oldest is not None and time.monotonic() - oldest >= self.flush_interval_s
            if self._rows >= self.flush_rows or due:
                self.flush()

    def flush(self) -> int:
        """Write everything buffered now; returns the rows written."""
        with self._lock:
            chunks, self._chunks = self._chunks, []
            self._rows = 0
            self._oldest = None
        if not chunks:
            return 0
        try:
            return self._write(chunks)
        except Exception as exc:  # the log must not take the server down; keep the rows for a retry
            log.error("prediction log write failed (%s: %s); will retry", type(exc).__name__, exc)
            if self.on_error:
                self.on_error()
            rows = sum(c.x.shape[0] for c in chunks)
            if self._rows + rows > 20 * self.flush_rows:
                # the disk has been failing for a while: bounded memory beats an out-of-memory kill
                log.error("prediction log: dropping %d rows that could not be written", rows)
                self.rows_dropped += rows
                if self.on_dropped:
                    self.on_dropped(rows)
                return 0
            with self._lock:
                self._chunks[:0] = chunks
                self._rows += rows
                self._oldest = self._oldest or time.monotonic()
            return 0

    def _write(self, chunks: list[_Chunk]) -> int:
        # group by the hour partition of each chunk's time
        # (integer hour keys: formatting a datetime per chunk costs more than the rest of the write)
        # (and by feature list: a part file has one schema, a reload may bring other features)
        groups: dict[tuple[int, int], list[_Chunk]] = {}
        for c in chunks:
            groups.setdefault((c.ts_us // 3_600_000_000, id(c.features)), []).append(c)
        total = 0
        for (hour_key, _), group in groups.items():
            features = group[0].features
            t = datetime.fromtimestamp(hour_key * 3600, tz=UTC)
            date, hour = t.strftime("%Y-%m-%d"), t.strftime("%H")
            counts = [c.x.shape[0] for c in group]
            x = np.concatenate([c.x for c in group]).astype(np.float64)
            ids = [i for c in group for i in c.ids]
            id_counts = [n for c in group for n in c.counts]
            cols: dict[str, Any] = {
                "request_id": pa.array(np.repeat(np.array(ids, dtype=object), id_counts), pa.string()),
                "timestamp": pa.array(
                    np.repeat(np.array([c.ts_us for c in group], dtype="int64"), counts), pa.int64()
                ).cast(pa.timestamp("us", tz="UTC")),
                "model_name": pa.array(
                    np.repeat(np.array([c.model_name for c in group], dtype=object), counts), pa.string()
                ),
                "model_version": pa.array(
                    np.repeat(np.array([c.model_version for c in group], dtype=object), counts), pa.string()
                ),
            }
            for j, name in enumerate(features):
                cols[name] = pa.array(x[:, j], pa.float64())
            labels = np.concatenate([c.labels for c in group])
            cols["prediction"] = pa.array(labels.tolist() if labels.dtype.kind in "OUS" else labels)
            cols["score"] = pa.array(np.concatenate([c.scores for c in group]).astype(np.float64), pa.float64())
            table = pa.table(cols)
            part_dir = self.dir / f"date={date}" / f"hour={hour}"
            part_dir.mkdir(parents=True, exist_ok=True)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            name = f"part-{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
            tmp = part_dir / f".{name}.tmp"
            pq.write_table(table, tmp)
            os.replace(tmp, part_dir / name)
            total += table.num_rows
            self.files_written += 1
        self.rows_written += total
        if self.on_written:
            self.on_written(total)
        return total

    def close(self) -> int:
        """Stop the writer thread and write what is buffered (SIGTERM path)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)
        written = self.flush()
        if self._rows:  # a failed write: one more try before giving up, loudly
            written += self.flush()
            if self._rows:
                log.error("prediction log: %d rows could not be written to %s", self._rows, self.dir)
        return written


def read_predictions(log_dir: str | Path):
    """All logged rows as one pyarrow Table (hive partitions as columns ``date`` and ``hour``)."""
    path = Path(log_dir)
    if not path.is_dir() or not any(path.rglob("part-*.parquet")):
        return pa.table({})
    return ds.dataset(str(path), format="parquet", partitioning="hive").to_table()
