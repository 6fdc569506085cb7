"""Append-only audit log of registry changes: what moved, when, why, by which command.

One JSON object per line in ``<paths.logs>/audit.jsonl``, hash-chained
(:mod:`aiinfra.governance.chain`: each event carries ``seq``, ``prev_hash`` and ``hash``, one
locked, fsync'd ``write`` per event), so an edited, deleted, reordered or truncated event is found
by ``aiinfra audit verify`` (docs/audit.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import logging
import os
import shlex
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiinfra.governance.chain import append

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
    return append(audit_path(cfg), event)


@contextlib.contextmanager
def registry_lock(cfg: Any) -> Iterator[None]:
    """Serialise register-decide-move-append of the registry between ``register`` processes of this
    project: an exclusive ``flock`` on ``<paths.logs>/.registry.lock``, held while one process
    registers the version, decides the gate, moves the alias by compare-and-set
    (``aiinfra.stages.register.move_alias_if``) and appends to the audit log. The champion is read
    and re-scored before the lock is taken, so the second of two queued registers finds the alias
    moved since its gate compared and refuses (exit 3) instead of comparing against the winner
    unseen. (A lock file serialises processes that share the project's disk; on other machines
    against one tracking server the compare-and-set's re-read narrows the race but cannot close it.)"""
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
