"""The current data: a Parquet/CSV file, or a time/row window of the server's prediction log.

The prediction log is hive-partitioned Parquet written by the server::

    <server.log_dir or paths.logs/predictions>/date=YYYY-MM-DD/hour=HH/part-*.parquet

with ``request_id``, ``timestamp`` (timestamp[us, UTC]), ``model_name``, ``model_version``, one
column per feature (double; for a model with a data contract typed as the contract says: double,
bool, timestamp[us], string, nulls for gaps: :mod:`aiinfra.monitoring.typed_columns` compares
them), ``prediction`` (a class label, or a regression model's value) and ``score``
(classification). Windows prune whole partitions by their directory names first and filter on
``timestamp`` inside, and columns are read one at a time (Parquet is columnar), so a window is
never held in memory as a whole table.

Encrypted parts (``server.log_privacy.encrypt``, Parquet modular encryption) are read
transparently with the master keys of the config's ``server.log_privacy``
(:mod:`aiinfra.serving.log_crypto`); plaintext parts in the same log read as well. An encrypted
part without keys to open it is one error naming the environment variable.

The log root and ``monitor.current`` may be object-store URLs (``s3://bucket/predictions``):
listing, footers and column reads then go through fsspec (:func:`aiinfra.storage.urls.arrow_filesystem`),
with the credentials and endpoint of the environment.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiinfra.config.schema import RootConfig
from aiinfra.errors import AiinfraError, DataValidationError
from aiinfra.monitoring.schema import WindowConfig, parse_time
from aiinfra.monitoring.verdict import WindowBounds
from aiinfra.storage import urls

log = logging.getLogger("aiinfra.monitor")

LOG_SUBDIR = "predictions"
TIMESTAMP = "timestamp"
REQUEST_ID = "request_id"
PREDICTION = "prediction"


@dataclass
class CurrentData:
    """A lazily read table: columns come out one at a time (``column``).

    The rule for damaged log parts: a file whose footer cannot be read is left out before anything
    is read, with a warning naming it, and listed in the verdict's ``skipped_files``
    (:func:`open_log`). A file whose footer reads but whose data does not is found only when a read
    fails: the files are then read one by one and the damaged ones are one error naming each (with
    the ``mv`` that sets them aside), since the window's counts are already taken. A single current
    file that cannot be read is an error naming it.
    """

    description: str  # for messages and the verdict: the file, or the log and window
    dataset: Any  # pyarrow.dataset.Dataset
    filter: Any = None  # pyarrow.compute.Expression or None
    window: WindowBounds | None = None  # the resolved window (ISO strings), for the verdict
    skipped: list[str] = field(default_factory=list)  # unreadable log files left out (with why)
    files: list[str] | None = None  # the log's files (None: one current file)
    crypto: Any = None  # aiinfra.serving.log_crypto.LogCrypto that decrypts the parts, or None

    @property
    def names(self) -> list[str]:
        return list(self.dataset.schema.names)

    def type_of(self, name: str) -> Any:
        return self.dataset.schema.field(name).type

    def count_rows(self) -> int:
        return int(self._read(lambda d: d.count_rows(filter=self.filter)))

    def column(self, name: str):
        """One column of the window as a pyarrow ChunkedArray."""
        return self._read(lambda d: d.to_table(columns=[name], filter=self.filter).column(0))

    def table(self, columns: list[str]):
        return self._read(lambda d: d.to_table(columns=columns, filter=self.filter))

    def _read(self, fn):
        import pyarrow as pa

        try:
            return fn(self.dataset)
        except (pa.ArrowException, OSError) as exc:
            if not self.files:
                raise DataValidationError(
                    f"cannot read {self.description}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
                    hint="the file is damaged or not what its name says: write it again",
                ) from None
            first_error = exc
        bad = {f: why for f in self.files if (why := _unreadable(f, self.crypto)) is not None}
        if not bad:  # no single file fails: not a damaged part
            raise first_error
        # found mid-read, after other columns or counts may have been taken from the whole window:
        # leaving it out now would mix rows, so it is an error naming each file (the fix is one mv)
        shown = "; ".join(f"{path} ({why})" for path, why in list(bad.items())[:5])
        first = next(iter(bad))
        aside = first.rsplit("/", 1)
        aside = f"{aside[0]}/_{aside[1]}" if len(aside) == 2 else "_" + first
        raise DataValidationError(
            f"{len(bad)} damaged Parquet file(s) in {self.description}: {shown}",
            hint="its footer reads but its data does not: move it out of the log, or rename it with a "
            f"leading '_' (mv {first} {aside}): the monitor skips such files",
        )


def _unreadable(path: str, crypto: Any = None) -> str | None:
    """Why a Parquet file's data cannot be read, or None when it reads (every column, every row)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fs, _ = urls.arrow_filesystem(path)
    props = crypto.decryption_properties() if crypto is not None else None
    try:
        pq.read_table(urls.inner_path(path), filesystem=fs, decryption_properties=props)
    except (pa.ArrowException, OSError) as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return None


def _crypto(server_cfg: Any) -> Any:
    """The decryption of the config's logs (None: plaintext only); a missing key is an error now."""
    if server_cfg is None:
        return None
    from aiinfra.serving.log_crypto import reader_crypto

    return reader_crypto(server_cfg)


def _check_locked(files: list[str], crypto: Any, server_cfg: Any) -> None:
    """Encrypted parts and no keys: one error naming the variable (not "unreadable file")."""
    if crypto is not None:
        return
    from aiinfra.serving.log_crypto import is_encrypted, locked_part_error

    locked = next((f for f in files if is_encrypted(f)), None)
    if locked is not None:
        raise locked_part_error(urls.redact(locked), server_cfg)


def open_file(path: str | Path, server_cfg: Any = None) -> CurrentData:
    """A Parquet file or directory (encrypted parts decrypted with ``server_cfg.log_privacy``'s
    keys), or a CSV file; a local path or an object-store URL."""
    with urls.storage_errors(path, "monitor.current"):
        return _open_file(str(path), server_cfg)


def _open_file(path: str, server_cfg: Any) -> CurrentData:
    import pyarrow as pa
    import pyarrow.dataset as ds

    shown = urls.redact(path)
    if not urls.exists(path):
        raise AiinfraError(
            f"current data file not found: {shown}",
            hint="set monitor.current to an existing Parquet or CSV file, or to null for the prediction log",
        )
    name = path.rstrip("/").rsplit("/", 1)[-1].lower()
    suffix = Path(name).suffix
    try:
        if suffix in {".csv", ".tsv", ".txt"} or name.endswith(".csv.gz"):
            import pyarrow.csv as pcsv

            parse = pcsv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ",")
            # empty fields are missing values, in text columns too (as pandas reads them)
            convert = pcsv.ConvertOptions(strings_can_be_null=True)
            if urls.is_remote(path):
                with urls.open_file(path) as f:
                    table = pcsv.read_csv(pa.py_buffer(f.read()), parse_options=parse, convert_options=convert)
            else:
                table = pcsv.read_csv(path, parse_options=parse, convert_options=convert)
            return CurrentData(shown, ds.dataset(table))
        crypto = _crypto(server_cfg)
        files = [path] if urls.isfile(path) else [f for f in urls.glob(path, "**/*.parquet")]
        _check_locked(files, crypto, server_cfg)
        fmt = crypto.parquet_format() if crypto is not None else "parquet"
        fs, inner = urls.arrow_filesystem(path)
        return CurrentData(shown, ds.dataset(inner, filesystem=fs, format=fmt), crypto=crypto)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise AiinfraError(
            f"cannot read current data {shown}: {exc}",
            hint="monitor.current must be a Parquet file/directory or a CSV file with a header row",
        ) from None


def _part_files(files: list[str]) -> list[str]:
    # dot/underscore names are files being written (the server writes .part-*.tmp, then renames)
    return [f for f in sorted(files) if not f.rstrip("/").rsplit("/", 1)[-1].startswith((".", "_"))]


class _Footers:
    """Row counts from Parquet footers (no data read); a file whose footer cannot be read (a
    damaged or truncated part) is left out with a warning instead of failing the whole window."""

    def __init__(self, crypto: Any = None) -> None:
        self._rows: dict[str, int] = {}
        self.skipped: list[str] = []
        self.crypto = crypto

    def rows(self, path: str) -> int:
        if path not in self._rows:
            import pyarrow as pa
            import pyarrow.parquet as pq

            props = self.crypto.decryption_properties() if self.crypto is not None else None
            try:
                if urls.is_remote(path):
                    with urls.open_file(path) as f:
                        self._rows[path] = pq.read_metadata(f, decryption_properties=props).num_rows
                else:
                    self._rows[path] = pq.read_metadata(path, decryption_properties=props).num_rows
            except (pa.ArrowException, OSError) as exc:
                self._rows[path] = -1
                self.skipped.append(f"{path}: {exc}")
        return self._rows[path]


def _partitions(root: str) -> list[tuple[str, str, list[str]]]:
    """(date, hour, its Parquet files) of every hive partition under ``root`` (a directory or an
    object-store URL: one listing for the whole log), oldest first."""
    if not urls.is_remote(root):
        base = urls.local_path(root)
        if not base.is_dir():
            return []
        out = []
        for ddir in base.glob("date=*"):
            for hdir in ddir.glob("hour=*"):
                if hdir.is_dir():
                    files = _part_files([str(f) for f in hdir.glob("*.parquet")])
                    out.append((ddir.name[5:], hdir.name[5:].zfill(2), files))
        return sorted(out)
    grouped: dict[tuple[str, str], list[str]] = {}
    for f in urls.glob(root, "date=*/hour=*/*.parquet"):
        date_dir, hour_dir = f.rsplit("/", 3)[1:3]
        grouped.setdefault((date_dir[5:], hour_dir[5:].zfill(2)), []).append(f)
    return sorted((d, h, _part_files(files)) for (d, h), files in grouped.items())


def log_root(cfg: RootConfig) -> str:
    """Where the server logs: ``server.log_dir``, else ``<paths.logs>/predictions`` (a local
    path or an object-store URL)."""
    # the http server has log_dir; the batch server and a plugin's server may not
    configured = getattr(cfg.server, "log_dir", None)
    return str(configured) if configured else urls.join(str(cfg.paths.logs), LOG_SUBDIR)


def open_log(
    root: str | Path, window: WindowConfig, now: dt.datetime | None = None, server_cfg: Any = None
) -> CurrentData:
    """A window of the prediction log under ``root`` (a validated ``monitor.window``: at most one
    kind of window, times that parse); encrypted parts are decrypted with ``server_cfg``'s keys."""
    with urls.storage_errors(root, "server.log_dir"):
        return _open_log(str(root), window, now, server_cfg)


def _open_log(root: str, window: WindowConfig, now: dt.datetime | None, server_cfg: Any) -> CurrentData:
    import pyarrow as pa
    import pyarrow.dataset as ds

    parts = _partitions(root)
    shown = urls.redact(root)
    if not parts:
        raise AiinfraError(
            f"no prediction log under {shown} (expected date=YYYY-MM-DD/hour=HH/*.parquet)",
            hint="serve the model first (`aiinfra serve`) so that it logs predictions, "
            "or compare a file: aiinfra monitor monitor.current=FILE.parquet",
        )
    crypto = _crypto(server_cfg)
    if crypto is None:
        _check_locked([f for _, _, files in parts for f in files], None, server_cfg)
    footers = _Footers(crypto)
    last_hours, last_rows = window.last_hours, window.last_rows
    start = parse_time(window.start) if window.start is not None else None
    end = parse_time(window.end) if window.end is not None else None
    if last_hours is not None:
        start = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(hours=last_hours)

    if last_rows is not None:
        # newest partitions first, until they hold enough rows (row counts come from the
        # Parquet footers, no data is read)
        picked, total = [], 0
        for date, hour, part_files in reversed(parts):
            picked.append((date, hour, part_files))
            total += sum(footers.rows(f) for f in part_files)
            if total >= last_rows:
                break
        parts = sorted(picked)

    part_schema = pa.schema([("date", pa.string()), ("hour", pa.string())])
    files = [f for _, _, part_files in parts for f in part_files if footers.rows(f) >= 0]
    if not files:
        raise AiinfraError(
            f"the prediction log under {shown} has no readable Parquet files in the window"
            + (f" ({len(footers.skipped)} unreadable)" if footers.skipped else "")
        )

    fs, base_dir = urls.arrow_filesystem(root)

    def build(files: list[str]):
        return ds.dataset(
            [urls.inner_path(f) for f in files],
            filesystem=fs,
            format=crypto.parquet_format() if crypto is not None else "parquet",
            partitioning=ds.HivePartitioning(part_schema),
            partition_base_dir=base_dir,
        )

    try:
        dataset = build(files)
    except (pa.ArrowInvalid, OSError) as exc:
        raise AiinfraError(f"cannot read the prediction log under {shown}: {exc}") from None
    if TIMESTAMP not in dataset.schema.names:
        raise DataValidationError(
            f"the prediction log under {shown} has no '{TIMESTAMP}' column",
            hint="the server writes request_id, timestamp, model_name, model_version, features, prediction, score",
        )

    expr = None
    ts_type = dataset.schema.field(TIMESTAMP).type

    def both(a, b):
        return b if a is None else a & b

    if start is not None:
        # prune partitions by name (cheap), then filter rows by timestamp
        d, h = start.astimezone(dt.UTC).strftime("%Y-%m-%d"), start.astimezone(dt.UTC).strftime("%H")
        expr = both(expr, (ds.field("date") > d) | ((ds.field("date") == d) & (ds.field("hour") >= h)))
        expr = both(expr, ds.field(TIMESTAMP) >= pa.scalar(start, type=ts_type))
    if end is not None:
        d, h = end.astimezone(dt.UTC).strftime("%Y-%m-%d"), end.astimezone(dt.UTC).strftime("%H")
        expr = both(expr, (ds.field("date") < d) | ((ds.field("date") == d) & (ds.field("hour") <= h)))
        expr = both(expr, ds.field(TIMESTAMP) < pa.scalar(end, type=ts_type))
    if last_rows is not None and total > last_rows:
        import numpy as np

        ts = dataset.to_table(columns=[TIMESTAMP]).column(0)
        stamps = ts.cast(pa.int64()).to_numpy(zero_copy_only=False)
        k = stamps.size - last_rows
        cutoff = int(np.partition(stamps, k)[k])
        # rows logged at the very same microsecond as the cutoff are all kept
        expr = both(expr, ds.field(TIMESTAMP) >= pa.scalar(cutoff, type=pa.int64()).cast(ts_type))

    described = WindowBounds(
        last_hours=last_hours,
        start=start.isoformat() if start else None,
        end=end.isoformat() if end else None,
        last_rows=last_rows,
    )
    what = ", ".join(f"{k}={v}" for k, v in described.items() if v is not None) or "whole log"
    if footers.skipped:
        log.warning(
            "prediction log: skipped %d unreadable file(s): %s", len(footers.skipped), "; ".join(footers.skipped[:5])
        )
    return CurrentData(
        f"prediction log {shown} ({what})", dataset, expr, described, footers.skipped, files=files, crypto=crypto
    )


def open_current(cfg: RootConfig) -> CurrentData:
    """The current data of a monitor run: ``monitor.current`` or the prediction log window."""
    if cfg.monitor.current:  # (validation refused a window with it)
        return open_file(cfg.monitor.current, cfg.server)
    return open_log(log_root(cfg), cfg.monitor.window, now=env_now(), server_cfg=cfg.server)


def env_now() -> dt.datetime | None:
    """``AIINFRA_NOW`` (ISO time) pins "now" for windows: reproducible runs and tests."""
    raw = os.environ.get("AIINFRA_NOW")
    if not raw:
        return None
    try:
        return parse_time(raw)
    except ValueError:
        raise AiinfraError(
            f"AIINFRA_NOW={raw!r} is not an ISO-8601 time", hint="e.g. AIINFRA_NOW=2026-11-28T13:00:00Z, or unset it"
        ) from None


def protected_features(current: CurrentData, features: list[str], server_cfg: Any = None) -> dict[str, str]:
    """{feature: policy} of the features the log does not keep as sent (``drop``, ``hash``,
    ``redact``): recorded in the parts' schema metadata, and, for the prediction log, what the
    config's ``server.log_privacy`` says. Such a column cannot be compared with the reference."""
    from aiinfra.serving.privacy import KEEP, protected_columns

    found = {k: v for k, v in protected_columns(current.dataset.schema).items() if k in features}
    privacy = getattr(server_cfg, "log_privacy", None)
    if privacy is not None and current.files is not None:  # the log, not a file the user named
        for name in features:
            policy = str(privacy.columns.get(name, privacy.default))
            if policy != KEEP:
                found.setdefault(name, policy)
    return found
