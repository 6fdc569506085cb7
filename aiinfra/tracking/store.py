"""Calls into the MLflow store that survive a busy store and fail with one clear line.

A sqlite store allows one writer at a time. MLflow waits up to 20 s on a locked database (its
``busy_timeout``) and then raises a long ``database is locked`` traceback; another process holding
a write transaction for longer (an open ``sqlite3`` shell, a stuck ``mlflow ui`` migration, a
crashed writer on a network disk) would fail the training. :func:`store_call` retries such a
call with exponential backoff for a bounded time (``tracking.retry_s``; the environment's
``AIINFRA_TRACKING_RETRY_S`` wins, as ``MLFLOW_TRACKING_URI`` wins over ``tracking.uri``), logging
one line when the store turns busy and one when it is back, and then raises
:class:`TrackingStoreError`: one message naming the store and the fix. A store that cannot be
opened or written at all (its directory is a file, the disk is read-only or full) is a
:class:`TrackingStoreError` at once. Anything else is a bug and keeps its traceback.

Store URIs are shown with any password removed (``postgresql://user:***@host/db``).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from aiinfra.errors import AiinfraError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: the environment variable that overrides ``tracking.retry_s``
RETRY_ENV = "AIINFRA_TRACKING_RETRY_S"
# what sqlite (through SQLAlchemy and MLflow) says when another connection holds the lock
_LOCKED = ("database is locked", "database table is locked", "database schema is locked", "sqlite_busy")
# a store that cannot be used at all: retrying does not help
_UNUSABLE = (
    "unable to open database file",
    "readonly database",
    "disk i/o error",
    "database or disk is full",
    "file is not a database",
    "database disk image is malformed",
)


class TrackingStoreError(AiinfraError):
    """The MLflow store is locked for longer than ``tracking.retry_s``, or cannot be used."""


def redact_uri(uri: str) -> str:
    """``scheme://user:password@host`` -> ``scheme://user:***@host`` (a secret never reaches a message)."""
    return re.sub(r"(://[^/:@]+):[^/@]*@", r"\1:***@", uri)


def retry_seconds(tracking_cfg: Any) -> float:
    """How long a locked store is retried: ``AIINFRA_TRACKING_RETRY_S``, else ``tracking.retry_s``."""
    raw = os.environ.get(RETRY_ENV)
    if raw:
        try:
            return max(0.0, float(raw))
        except ValueError:
            raise AiinfraError(
                f"{RETRY_ENV}={raw!r} is not a number of seconds.", hint=f"for example {RETRY_ENV}=60"
            ) from None
    return tracking_cfg.retry_s


def _chain(exc: BaseException):
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _text(exc: BaseException) -> str:
    return " | ".join(str(e) for e in _chain(exc)).lower()


def is_locked(exc: BaseException) -> bool:
    return any(s in _text(exc) for s in _LOCKED)


def is_unusable(exc: BaseException) -> bool:
    return (
        isinstance(exc, OSError)
        or any(isinstance(e, OSError) for e in _chain(exc))
        or any(s in _text(exc) for s in _UNUSABLE)
    )


def _first_line(exc: BaseException) -> str:
    for e in _chain(exc):
        text = str(e).strip()
        if text:
            line = text.splitlines()[0]
            line = re.sub(r"^\((sqlite3|sqlalchemy)[.\w]*\)\s*", "", line)
            return f"{type(e).__name__}: {line}"[:300]
    return type(exc).__name__


def unusable_error(uri: str, what: str, exc: BaseException) -> TrackingStoreError:
    return TrackingStoreError(
        f"cannot use the MLflow store {redact_uri(uri)} while {what}: {redact_uri(_first_line(exc))}",
        hint="check that the store's path exists, is a directory path you can write and has free space "
        "(set tracking.uri, or MLFLOW_TRACKING_URI for a tracking server)",
    )


def locked_error(uri: str, what: str, waited: float) -> TrackingStoreError:
    return TrackingStoreError(
        f"the MLflow store {redact_uri(uri)} stayed locked for {waited:.0f} s while {what}: another "
        "process holds a write transaction on it.",
        hint="end that process (an open sqlite3 shell, a stuck aiinfra or mlflow process) and run again, "
        f"wait longer with tracking.retry_s (or {RETRY_ENV}), or point concurrent writers at a tracking "
        "server (MLFLOW_TRACKING_URI=http://...)",
    )


class _QuietLockErrors(logging.Filter):
    """MLflow logs every operational database error with its full traceback (``logger.exception``
    in ``mlflow.store.db.utils``) and then raises it; a lock is reported by :func:`store_call`
    in one line instead, so that record is dropped while a call runs there."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (exc is not None and is_locked(exc))


_MLFLOW_DB_LOGGER = "mlflow.store.db.utils"
_quiet = _QuietLockErrors()


_active = [0]  # store_calls running (threads, nesting): the filter stays while any is
_active_lock = threading.Lock()


def store_call(uri: str, what: str, fn: Callable[..., T], *args: Any, retry_s: float, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, retried while the store at ``uri`` is locked, for at most ``retry_s``.

    ``what`` says what was being done ("opening the training run"), for the log and the error.
    """
    db_log = logging.getLogger(_MLFLOW_DB_LOGGER)
    with _active_lock:
        _active[0] += 1
        db_log.addFilter(_quiet)
    try:
        return _store_call(uri, what, fn, *args, retry_s=retry_s, **kwargs)
    finally:
        with _active_lock:
            _active[0] -= 1
            if not _active[0]:
                db_log.removeFilter(_quiet)


def _store_call(uri: str, what: str, fn: Callable[..., T], *args: Any, retry_s: float, **kwargs: Any) -> T:
    started = time.monotonic()
    delay = 0.25
    busy = False
    while True:
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            if not is_locked(exc):
                if is_unusable(exc):
                    raise unusable_error(uri, what, exc) from None
                raise
            waited = time.monotonic() - started
            if waited + delay > retry_s:
                raise locked_error(uri, what, waited) from None
            if not busy:
                busy = True
                log.warning(
                    "MLflow store %s is locked by another process while %s: retrying for up to %.0f s",
                    redact_uri(uri),
                    what,
                    retry_s,
                )
            time.sleep(delay)
            delay = min(delay * 2, 8.0)
            continue
        if busy:
            log.info("MLflow store %s is writable again (after %.1f s)", redact_uri(uri), time.monotonic() - started)
        return result
