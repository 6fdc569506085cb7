"""Append-only audit log of registry changes: what moved, when, why, by which command.

One JSON object per line in ``<paths.logs>/audit.jsonl``. Lines are only ever appended (opened in
append mode, one ``write`` per event, fsync'd), so the file is a faithful history.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import logging
import os
import shlex
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def audit_path(cfg: Any) -> Path:
    return Path(cfg.paths.logs) / "audit.jsonl"


def append_audit(cfg: Any, action: str, **fields: Any) -> dict[str, Any]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    event = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "action": action,
        **fields,
        "command": shlex.join(["aiinfra", *sys.argv[1:]]) if sys.argv else "",
        "user": user,
        "pid": os.getpid(),
    }
    path = audit_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(event, sort_keys=True, default=str) + "\n"
    with path.open("a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())
    return event


@contextlib.contextmanager
def registry_lock(cfg: Any) -> Iterator[None]:
    """Serialise read-compare-move-append of the registry between ``register`` processes of this
    project: an exclusive ``flock`` on ``<paths.logs>/.registry.lock``, held while one process
    reads the alias, applies the gate, moves it and appends to the audit log. So two concurrent
    runs cannot both see the old alias and both write ``alias_moved`` for one move. (A lock file
    serialises processes that share the project's disk; writers on other machines against one
    tracking server are not covered.)"""
    path = Path(cfg.paths.logs) / ".registry.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            started = time.monotonic()
            log.info("another `aiinfra register` holds %s: waiting for it", path)
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            log.info("registry lock taken after %.1f s", time.monotonic() - started)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
