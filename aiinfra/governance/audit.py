"""Append-only audit log of registry changes: what moved, when, why, by which command.

One JSON object per line in ``<paths.logs>/audit.jsonl``. Lines are only ever appended (opened in
append mode, one ``write`` per event, fsync'd), so the file is a faithful history.
"""

from __future__ import annotations

import getpass
import json
import os
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


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
