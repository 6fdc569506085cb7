"""Retention of the prediction log and the feedback log (``server.log_privacy.retention_days``).

A ``date=YYYY-MM-DD`` partition (UTC) is deleted once its date is more than ``retention_days``
days before today: with ``retention_days=30`` on 2026-12-31 the partitions up to 2026-11-30 go.
Today's partition (the one being written) is never deleted (``retention_days`` is at least 1).
Each deletion is appended to the registry audit log (``log_partition_deleted``: path, rows,
reason). The sweep runs when the server starts and then once an hour (a daemon thread), and when
the monitor starts (it may run where the server does not).

Several processes may sweep at once (server workers, a monitor): a partition is first renamed to a
dot-name (atomic, so exactly one process wins it), then removed, and only the winner writes the
audit line. On an object store (``server.log_dir=s3://...``) there is no atomic rename, and a delete
of a key that is already gone succeeds: a sweeper first claims the partition with a conditional
PUT of ``<partition>/.deleting`` (``If-None-Match: *``: exactly one PUT succeeds), and only the
winner counts, deletes (the claim last) and writes the audit line; a sweeper whose claim succeeds
on a partition with nothing else left (another one just finished) removes its claim and writes
nothing. A sweeper killed mid-deletion leaves its claim: the partition then waits for a person.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

from aiinfra.errors import StorageError
from aiinfra.storage import urls

log = logging.getLogger("aiinfra.retention")

PARTITION = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
INTERVAL_S = 3600.0


def _absolute(path: str | Path) -> Path | str:
    """A local directory made absolute (a Path); an object-store URL as it is."""
    return urls.absolute(path) if urls.is_remote(path) else urls.local_path(path).resolve()


def log_dirs(cfg: Any) -> list[Path | str]:
    """The prediction log and the feedback log of ``cfg`` (as the server resolves them): local
    directories (absolute) or object-store URLs."""
    s, logs = cfg.server, str(cfg.paths.logs)
    predictions = getattr(s, "log_dir", None) or urls.join(logs, "predictions")
    feedback = getattr(s, "feedback_dir", None) or urls.join(logs, "feedback")
    return [_absolute(predictions), _absolute(feedback)]


def retention_days(cfg: Any) -> int | None:
    privacy = getattr(cfg.server, "log_privacy", None)
    return privacy.retention_days if privacy is not None else None


def _children(root: Path | str) -> list[tuple[str, Path | str]]:
    """(name, path) of the directories (object-store prefixes) right under ``root``."""
    if isinstance(root, str):
        if not urls.isdir(root):
            return []
        fs, inner = urls.filesystem(root)
        return [
            (p.rstrip("/").rsplit("/", 1)[-1], urls.join(root, p.rstrip("/").rsplit("/", 1)[-1]))
            for p in fs.ls(inner, detail=False, refresh=True)
            if fs.isdir(p)
        ]
    if not root.is_dir():
        return []
    return [(child.name, child) for child in root.iterdir() if child.is_dir()]


def expired(root: Path | str, days: int, today: dt.date) -> list[tuple[dt.date, Path | str]]:
    """The ``date=`` partitions under ``root`` (a directory or an object-store URL) older than
    ``days`` days before ``today``, oldest first."""
    if days < 1:
        return []
    cutoff = today - dt.timedelta(days=days)
    out = []
    for name, child in _children(root):
        m = PARTITION.match(name)
        if not m:
            continue
        try:
            date = dt.date.fromisoformat(m.group(1))
        except ValueError:
            continue
        if date < cutoff and date < today:
            out.append((date, child))
    return sorted(out)


def _rows(directory: Path | str, cfg: Any) -> int | None:
    """Rows of the partition's parts (footers only; encrypted ones with the configured keys);
    None when a part cannot be counted."""
    from aiinfra.serving import log_crypto

    try:
        crypto = log_crypto.reader_crypto(cfg.server)
    except Exception:  # noqa: BLE001 - no key here: the deletion still happens, the count is unknown
        crypto = None
    total = 0
    if isinstance(directory, str):  # an object store: the footers through fsspec
        import pyarrow.parquet as pq

        props = crypto.decryption_properties() if crypto is not None else None
        for part in urls.glob(directory, "**/*.parquet"):
            try:
                with urls.open_file(part) as f:
                    total += pq.read_metadata(f, decryption_properties=props).num_rows
            except Exception:  # noqa: BLE001 - as below
                return None
        return total
    for part in directory.rglob("*.parquet"):
        try:
            total += log_crypto.read_metadata(part, c=crypto).num_rows
        except Exception:  # noqa: BLE001 - a damaged or locked part: counted as unknown
            return None
    return total


def sweep(cfg: Any, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Delete the expired partitions of both logs; returns what was deleted (path, rows)."""
    days = retention_days(cfg)
    if not days:
        return []
    today = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).date()
    deleted = []
    for root in log_dirs(cfg):
        for date, partition in expired(root, days, today):
            if isinstance(partition, str):
                if not _claim_remote(partition):
                    continue  # another sweeper has it: its line is (or will be) in the audit log
                rows = _rows(partition, cfg)
                _remove_remote(partition)
                _record(cfg, partition, rows, days, date, today, deleted)
                continue
            rows = _rows(partition, cfg)
            claimed = partition.with_name(f".deleting-{partition.name}-{uuid.uuid4().hex[:8]}")
            try:
                os.rename(partition, claimed)  # atomic: another sweeper that got there first wins
            except OSError:
                continue
            shutil.rmtree(claimed, ignore_errors=True)
            _record(cfg, partition, rows, days, date, today, deleted)
    return deleted


CLAIM = ".deleting"


def _claim_remote(partition: str) -> bool:
    """True when this sweeper won ``partition`` (its conditional PUT of the claim succeeded and
    the partition still holds parts); False when another sweeper has it or has just emptied it."""
    fs, inner = urls.filesystem(partition)
    claim = f"{inner.rstrip('/')}/{CLAIM}"
    with urls.storage_errors(partition, "server.log_privacy.retention_days"):
        try:
            fs.pipe_file(claim, b"", mode="create")  # If-None-Match: * on S3
        except FileExistsError:
            return False
        fs.invalidate_cache(inner)
        if any(not p.rstrip("/").endswith(f"/{CLAIM}") for p in fs.find(inner)):
            return True
        fs.rm(claim)  # only our claim is left: the partition was deleted by another sweeper
        return False


def _remove_remote(partition: str) -> None:
    """Delete a claimed object-store partition, the claim last (until then no one else takes it)."""
    fs, inner = urls.filesystem(partition)
    claim = f"{inner.rstrip('/')}/{CLAIM}"
    with urls.storage_errors(partition, "server.log_privacy.retention_days"):
        others = [p for p in fs.find(inner) if p.rstrip("/") != claim]
        if others:
            fs.rm(others)
        fs.rm(claim)
        fs.invalidate_cache(inner)


def _record(cfg: Any, partition: Path | str, rows, days: int, date, today, deleted: list) -> None:
    from aiinfra.governance.audit import append_audit

    reason = f"older than server.log_privacy.retention_days={days} (date {date}, today {today} UTC)"
    shown = urls.redact(partition)
    append_audit(cfg, "log_partition_deleted", path=shown, rows=rows, reason=reason)
    log.info("retention: deleted %s (%s rows; %s)", shown, "?" if rows is None else rows, reason)
    deleted.append({"path": shown, "rows": rows})


class RetentionThread:
    """Sweeps every ``interval_s`` seconds in a daemon thread (the first sweep is the caller's);
    errors are logged and the next round tries again."""

    def __init__(self, cfg: Any, interval_s: float = INTERVAL_S):
        self.cfg = cfg
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="aiinfra-retention", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                sweep(self.cfg)
            except Exception:  # the thread must not die
                log.exception("retention: sweep failed")

    def start(self) -> RetentionThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()


def start(cfg: Any) -> RetentionThread | None:
    """The server's retention: a first sweep now (before the first request), then hourly; None
    when ``retention_days`` is null."""
    if not retention_days(cfg):
        return None
    try:
        sweep(cfg)
    except StorageError as exc:  # a log store that is down now: the server still starts (predlog retries)
        log.warning("retention: first sweep failed (%s); the next round tries again", exc)
    return RetentionThread(cfg).start()
