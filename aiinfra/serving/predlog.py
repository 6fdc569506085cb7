"""The prediction log: every predicted row, as Parquet, for the monitor.

Contract (the monitor reads it; change it only together with the monitor)::

    <log_dir>/date=YYYY-MM-DD/hour=HH/part-<UTC time>-<pid>-<random>.parquet   (hive partitioning)

    request_id     string
    timestamp      timestamp[us, tz=UTC]     when the row was predicted
    model_name     string
    model_version  string
    <feature>...   one column per model feature, named as Predictor.features: double for a model
                   without a data contract (or an all-numeric one); for a model with one (raw rows,
                   aiinfra.serving.tabular), each column typed as its contract type says: double
                   (numeric), bool (boolean), timestamp[us] (datetime, naive UTC), string
                   (categorical, text); a gap is null. The values are the request's after
                   DataContract.check_frame, so they compare with the training reference's raw columns.
    prediction     the predicted class label (the training target's type); regression: the
                   predicted value (double)
    score          double, the predicted class's probability (classification only: a regression
                   model's parts have no score column)

With ``server.log_privacy`` (``privacy=``, :class:`aiinfra.serving.privacy.LogPrivacy`) a
protected column is dropped, hashed (hex HMAC-SHA256, string) or redacted (``"[redacted]"``,
string) as each part is built, the part's schema metadata ``aiinfra.log_privacy`` names them,
and with encryption every part (in the log and in the spool) is Parquet-modular-encrypted
(:mod:`aiinfra.serving.log_crypto`).

One row per predicted row. Requests append in-memory chunks (a list append: nothing is written on
the request path); a background thread writes a part file when ``flush_rows`` rows are buffered or
``flush_interval_s`` after the oldest buffered row, and :meth:`PredictionLog.close` writes the rest.
Part files are written under a dot-name and renamed, so a reader never sees half a file. The log
directory may be an object-store URL (``server.log_dir=s3://bucket/predictions``): each part is
then built in memory and sent as one PUT, which the store makes visible only when complete (no
temporary name, no rename: S3 has no atomic rename); the spool stays a local directory.

When the disk fails or fills (``server.log_failure_policy``): a failed write keeps its rows in
memory and is retried with exponential backoff (0.1 s doubling up to ``flush_interval_s``, within 1 to 30 s),
with one log line when writes start failing and one when they work again, not one per retry.
``block`` keeps every row and, once ``buffer_rows`` wait, the server answers predictions 503 (and
readiness 503) until the disk is back; ``spool`` writes the parts to ``spool_dir`` instead and moves
them into the log when it is back (also at the next start); ``drop`` drops the oldest rows beyond
``buffer_rows``, counted in ``rows_dropped`` (``aiinfra_prediction_log_dropped_rows``). Rows
waiting or being written count as pending (``aiinfra_prediction_log_pending_rows``) until on disk.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
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

from aiinfra.storage import urls

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


POLICIES = ("block", "spool", "drop")
RETRY_FIRST_S = 0.1


class PredictionLog:
    def __init__(
        self,
        log_dir: str | Path,
        features: list[str],
        *,
        flush_rows: int = 50_000,
        flush_interval_s: float = 10.0,
        policy: str = "block",
        buffer_rows: int | None = None,
        spool_dir: str | Path | None = None,
        on_written=None,
        on_error=None,
        on_dropped=None,
        privacy=None,
    ):
        # a local Path, or an object-store URL (str): parts go there as single PUTs
        self.remote = urls.is_remote(log_dir)
        self.dir: Path | str = str(log_dir).rstrip("/") if self.remote else Path(log_dir)
        self.where = urls.redact(self.dir)  # for messages: a URL without credentials
        if self.remote:  # import s3fs and make its client now, not in the writer thread (the GIL)
            urls.filesystem(self.dir)
        # aiinfra.serving.privacy.LogPrivacy: column policies and encryption, applied where a part
        # is built, so the log directory and the spool only ever receive protected parts
        self.privacy = privacy
        self.features = list(features)  # default for append() without features
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
        if policy == "spool" and not spool_dir:
            raise ValueError("policy 'spool' needs a spool_dir")
        self.policy = str(policy)
        self.spool_dir = Path(spool_dir) if spool_dir else None
        self.on_dropped = on_dropped
        self.rows_dropped = 0
        self.flush_rows = max(1, int(flush_rows))
        self.flush_interval_s = max(0.05, float(flush_interval_s))
        self.buffer_rows = max(self.flush_rows, int(buffer_rows or 20 * self.flush_rows))
        self.retry_max_s = min(30.0, max(1.0, self.flush_interval_s))
        self.on_written = on_written
        self.on_error = on_error
        self._chunks: list[_Chunk] = []
        self._rows = 0
        self._inflight = 0  # rows taken by a write in progress: still pending until on disk
        self._oldest: float | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.rows_written = 0
        self.files_written = 0
        # failure state: one log line per change, retries with exponential backoff
        self.failing = False
        self.failing_since: float | None = None
        self.last_error: str | None = None
        self._retry_at = 0.0
        self._backoff = RETRY_FIRST_S
        self._dropping = False
        self._spool_failing = False
        self.spooled_rows = self._count_spooled()
        self._thread = threading.Thread(target=self._run, name="aiinfra-predlog", daemon=True)
        self._thread.start()

    @property
    def pending_rows(self) -> int:
        """Rows not yet on disk (buffered or being written); spooled rows are not pending."""
        return self._rows + self._inflight

    @property
    def refusing(self) -> bool:
        """Policy ``block``: writes fail and the buffer is full, so new predictions must wait (503)."""
        return self.policy == "block" and self.failing and self.pending_rows >= self.buffer_rows

    def health(self) -> dict[str, Any]:
        """The log's state for readiness: ``ok`` or ``degraded`` (writes failing or rows spooled)."""
        degraded = self.failing or self.spooled_rows > 0
        out: dict[str, Any] = {"state": "degraded" if degraded else "ok", "policy": self.policy}
        out.update(pending_rows=self.pending_rows, dropped_rows=self.rows_dropped, spooled_rows=self.spooled_rows)
        if self.failing:
            out["error"] = self.last_error
            out["failing_for_s"] = round(time.monotonic() - (self.failing_since or time.monotonic()), 1)
        return out

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
        (``request_id`` a list, ``counts`` the rows of each, in the order of ``x``). ``x``: float32
        rows, or raw rows (tabular.EncodedBatch: their typed columns are logged, one
        ``EncodedBatch.arrow_of`` table per written part); ``scores`` None: a regression model
        (``labels`` are the values)."""
        if isinstance(request_id, str):
            ids, counts = [request_id], [len(x)]
        else:
            ids = list(request_id)
            if counts is None or len(counts) != len(ids) or sum(counts) != len(x):
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
            self._rows += len(x)
            if self._oldest is None:
                self._oldest = time.monotonic()
            if self._rows >= self.flush_rows:
                self._wake.set()
            if self.policy != "block" and self._rows + self._inflight > self.buffer_rows:
                self._drop_oldest_locked()

    def _drop_oldest_locked(self) -> None:
        """Bounded memory (policies drop and spool): the oldest buffered rows go, counted."""
        dropped = 0
        while self._chunks and self._rows + self._inflight > self.buffer_rows:
            chunk = self._chunks.pop(0)
            n = len(chunk.x)
            self._rows -= n
            dropped += n
        if not dropped:
            return
        self.rows_dropped += dropped
        if self.on_dropped:
            self.on_dropped(dropped)
        if not self._dropping:
            self._dropping = True
            log.error(
                "prediction log: buffer full (%d rows, server.log_buffer_rows): dropping the oldest rows "
                "while writes to %s fail (counted in aiinfra_prediction_log_dropped_rows)",
                self.buffer_rows,
                self.where,
            )

    def _run(self) -> None:
        while not self._stop.is_set():
            timeout = min(1.0, self.flush_interval_s)
            if self.failing:
                timeout = max(0.01, min(timeout, self._retry_at - time.monotonic()))
            self._wake.wait(timeout=timeout)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                oldest = self._oldest
                due = oldest is not None and time.monotonic() - oldest >= self.flush_interval_s
                if self.failing:
                    # retry the log directory on the backoff schedule; policy spool keeps its cadence
                    # meanwhile, into the spool
                    if time.monotonic() >= self._retry_at or (
                        self.policy == "spool" and (self._rows >= self.flush_rows or due)
                    ):
                        self.flush()
                    continue
                if self._rows >= self.flush_rows or due:
                    self.flush()
                elif self.spooled_rows:
                    self._replay()
            except Exception:  # the writer thread must not die
                log.exception("prediction log: writer error")

    def flush(self) -> int:
        """Write everything buffered now; returns the rows written to the log directory."""
        with self._lock:
            chunks, self._chunks = self._chunks, []
            taken = self._rows
            self._inflight += taken
            self._rows = 0
            self._oldest = None
        if not chunks:
            if self.failing or self.spooled_rows:
                self._probe()
            return 0
        if self.failing and self.policy == "spool" and time.monotonic() < self._retry_at:
            # between retries of the log directory: straight to the spool
            rows = sum(len(c.x) for c in chunks)
            spooled = self._spool(chunks)
            with self._lock:
                self._inflight -= taken
                if not spooled:
                    self._chunks[:0] = chunks
                    self._rows += taken - (rows - sum(len(c.x) for c in chunks))
                    self._oldest = self._oldest or time.monotonic()
                    self._drop_oldest_locked()
            return 0
        try:
            written = self._write(chunks, self.dir)
        except Exception as exc:  # the log must not take the server down; keep the rows for a retry
            self._failed(exc)
            left = sum(len(c.x) for c in chunks)  # _write removed the chunks it did write
            with self._lock:
                self._inflight -= taken
            if self.policy == "spool" and self._spool(chunks):
                return 0
            with self._lock:
                self._chunks[:0] = chunks
                self._rows += left
                self._oldest = self._oldest or time.monotonic()
                if self.policy != "block" and self._rows + self._inflight > self.buffer_rows:
                    self._drop_oldest_locked()
            return 0
        with self._lock:
            self._inflight -= taken
        self._succeeded()
        return written

    def _probe(self) -> None:
        """No rows to write while failing (or spooled rows waiting): does the directory work again?"""
        try:
            if self.remote:
                probe = urls.join(self.dir, f".probe-{os.getpid()}")
                urls.write_bytes(probe, b"")
                urls.remove(probe)
            else:
                self.dir.mkdir(parents=True, exist_ok=True)
                probe = self.dir / f".probe-{os.getpid()}"
                probe.write_bytes(b"")
                probe.unlink()
        except Exception as exc:  # OSError locally; botocore's own errors from an object store
            self._failed(exc)
            return
        self._succeeded()

    def _failed(self, exc: BaseException) -> None:
        if self.on_error:
            self.on_error()
        now = time.monotonic()
        # shown on /health and logged: on an object store only the type and the redacted URL (a
        # library's text can carry a signed URL or a request's parameters); a local error's own text
        self.last_error = (
            f"{type(exc).__name__} writing {self.where}" if self.remote else f"{type(exc).__name__}: {exc}"
        )
        if not self.failing:
            self.failing = True
            self.failing_since = now
            self._backoff = RETRY_FIRST_S
            log.error(
                "prediction log: writes to %s fail (%s); policy %s: retrying with backoff up to %g s",
                self.where,
                self.last_error,
                self.policy,
                self.retry_max_s,
            )
        self._retry_at = now + self._backoff
        self._backoff = min(self._backoff * 2, self.retry_max_s)

    def _succeeded(self) -> None:
        if self.failing:
            self.failing = False
            log.warning(
                "prediction log: writes to %s work again after %.1f s (%d rows dropped in total, %d spooled)",
                self.where,
                time.monotonic() - (self.failing_since or time.monotonic()),
                self.rows_dropped,
                self.spooled_rows,
            )
            self.failing_since = None
            self.last_error = None
            self._dropping = False
        if self.spooled_rows:
            self._replay()

    # --- spool: a second directory while the first fails, replayed into it when it works again

    def _spool(self, chunks: list[_Chunk]) -> bool:
        """Write ``chunks`` to the spool directory (removing what it wrote); True if all went."""
        rows = sum(len(c.x) for c in chunks)
        try:
            self._write(chunks, self.spool_dir, count=False)
        except Exception as exc:
            self.spooled_rows += rows - sum(len(c.x) for c in chunks)
            if not self._spool_failing:
                self._spool_failing = True
                log.error("prediction log: the spool %s fails too (%s: %s)", self.spool_dir, type(exc).__name__, exc)
            return False
        self.spooled_rows += rows
        self._spool_failing = False
        return True

    def _spooled_parts(self) -> list[Path]:
        if self.spool_dir is None or not self.spool_dir.is_dir():
            return []
        return sorted(self.spool_dir.rglob("part-*.parquet"))

    def _count_spooled(self) -> int:
        total = 0
        for part in self._spooled_parts():
            try:
                total += self._read_metadata(part).num_rows
            except Exception:  # a broken spool file: skipped by the replay as well
                log.error("prediction log: unreadable spool file %s (left in place)", part)
        return total

    def _replay(self) -> int:
        """Move spooled parts into the log directory; returns the rows moved."""
        moved = 0
        for part in self._spooled_parts():
            try:
                rows = self._read_metadata(part).num_rows
                rel = part.relative_to(self.spool_dir)
                if self.remote:  # one PUT of the whole part: visible only when complete
                    urls.write_bytes(urls.join(self.dir, *rel.parts), part.read_bytes())
                else:
                    dest = self.dir / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    tmp = dest.parent / f".{dest.name}.tmp"
                    shutil.copyfile(part, tmp)  # another disk: copy, then rename (atomic for readers)
                    os.replace(tmp, dest)
                part.unlink()
            except Exception as exc:
                self._failed(exc)
                break
            moved += rows
            self.spooled_rows = max(0, self.spooled_rows - rows)
            self.rows_written += rows
            if self.on_written:
                self.on_written(rows)
        if moved:
            log.info("prediction log: replayed %d spooled rows from %s into %s", moved, self.spool_dir, self.where)
        return moved

    def _write(self, chunks: list[_Chunk], directory: Path | str, count: bool = True) -> int:
        """Write ``chunks`` under ``directory``; each written group is removed from ``chunks``, so
        after a failure ``chunks`` holds exactly what is still unwritten (no row is written twice)."""
        # group by the hour partition of each chunk's time
        # (integer hour keys: formatting a datetime per chunk costs more than the rest of the write)
        # (and by feature list and kind of rows: a part file has one schema, a reload may bring
        # other features, another task or raw rows)
        groups: dict[tuple, list[_Chunk]] = {}
        for c in chunks:
            kind = (isinstance(c.x, np.ndarray), c.scores is None)
            groups.setdefault((c.ts_us // 3_600_000_000, id(c.features), kind), []).append(c)
        total = 0
        for (hour_key, _, _), group in groups.items():
            table, date, hour = self._table(hour_key, group)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            name = f"part-{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
            self._put_part(table, directory, f"date={date}", f"hour={hour}", name)
            written = {id(c) for c in group}
            chunks[:] = [c for c in chunks if id(c) not in written]
            total += table.num_rows
            if count:
                self.files_written += 1
                self.rows_written += table.num_rows
                if self.on_written:
                    self.on_written(table.num_rows)
        return total

    def _put_part(self, table: Any, directory: Path | str, date: str, hour: str, name: str) -> None:
        """One part file, never visible half written: locally a dot-name renamed when complete,
        on an object store the whole part in one PUT (an object appears only once complete)."""
        options = self.privacy.write_options() if self.privacy is not None else {}
        if isinstance(directory, str):
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink, **options)
            urls.write_bytes(urls.join(directory, date, hour, name), sink.getvalue().to_pybytes())
            return
        part_dir = directory / date / hour
        part_dir.mkdir(parents=True, exist_ok=True)
        tmp = part_dir / f".{name}.tmp"
        try:
            pq.write_table(table, tmp, **options)
            os.replace(tmp, part_dir / name)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def _table(self, hour_key: int, group: list[_Chunk]):
        features = group[0].features
        t = datetime.fromtimestamp(hour_key * 3600, tz=UTC)
        date, hour = t.strftime("%Y-%m-%d"), t.strftime("%H")
        counts = [len(c.x) for c in group]
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
        if isinstance(group[0].x, np.ndarray):
            x = np.concatenate([c.x for c in group]).astype(np.float64)
            for j, name in enumerate(features):
                cols[name] = pa.array(x[:, j], pa.float64())
        else:  # raw rows: their typed columns (aiinfra.serving.tabular.EncodedBatch; not imported here)
            raw = type(group[0].x).arrow_of([c.x for c in group])
            for name in features:
                cols[name] = raw.column(name)
        labels = np.concatenate([c.labels for c in group])
        if group[0].scores is None:  # regression: the prediction is the value
            cols["prediction"] = pa.array(labels.astype(np.float64), pa.float64())
        else:
            cols["prediction"] = pa.array(labels.tolist() if labels.dtype.kind in "OUS" else labels)
            cols["score"] = pa.array(np.concatenate([c.scores for c in group]).astype(np.float64), pa.float64())
        if self.privacy is not None:
            return self.privacy.table(cols, features), date, hour
        return pa.table(cols), date, hour

    def _read_metadata(self, part: Path):
        """A part's footer (the spool's parts are encrypted when the log is)."""
        return pq.read_metadata(part, **(self.privacy.read_options() if self.privacy is not None else {}))

    def close(self) -> int:
        """Stop the writer thread and write what is buffered (SIGTERM path). Rows that still cannot
        be written are counted as dropped (policy spool: spooled, for the next start to replay)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)
        written = self.flush()
        if self._rows:  # a failed write: one more try before giving up, loudly
            written += self.flush()
        if self._rows:
            with self._lock:
                lost, self._chunks, self._rows = self._rows, [], 0
            self.rows_dropped += lost
            if self.on_dropped:
                self.on_dropped(lost)
            log.error("prediction log: %d rows could not be written to %s (counted as dropped)", lost, self.where)
        if self.spooled_rows:
            log.warning(
                "prediction log: %d rows stay in the spool %s; the next start moves them into %s",
                self.spooled_rows,
                self.spool_dir,
                self.where,
            )
        return written


def read_predictions(log_dir: str | Path, server_cfg: Any = None):
    """All logged rows as one pyarrow Table (hive partitions as columns ``date`` and ``hour``);
    ``log_dir`` a directory or an object-store URL; encrypted parts are decrypted with
    ``server_cfg.log_privacy``'s keys."""
    with urls.storage_errors(log_dir, "server.log_dir"):
        if urls.is_remote(log_dir):
            if not urls.glob(log_dir, "**/part-*.parquet"):
                return pa.table({})
        else:
            path = urls.local_path(log_dir)
            if not path.is_dir() or not any(path.rglob("part-*.parquet")):
                return pa.table({})
        from aiinfra.serving.log_crypto import reader_crypto

        crypto = reader_crypto(server_cfg) if server_cfg is not None else None
        fmt = crypto.parquet_format() if crypto is not None else "parquet"
        fs, inner = urls.arrow_filesystem(log_dir)
        return ds.dataset(inner, filesystem=fs, format=fmt, partitioning="hive").to_table()
