"""Incremental watermarks: the largest value of the incremental column seen per source, in JSON.

Layout of the state file::

    {"committed": {"<key>": {"value": 1042, "type": "int"}},
     "pending":   {"<key>": {"value": 1097, "type": "int"}}}

``read()`` records the new watermark as *pending*; it becomes *committed* when the prepare stage
finished (the plugin's ``aiinfra_stage_finished`` hook), so a failed run re-reads its window.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

from aiinfra_sql.url import resolve_url


def source_key(url: str, table: str | None, query: str | None, column: str) -> str:
    """A stable key per (database, table or query, column); the URL without its password."""
    from sqlalchemy.engine import make_url

    safe_url = make_url(url).render_as_string(hide_password=True)
    what = f"table:{table}" if table else "query:" + hashlib.sha256((query or "").encode()).hexdigest()[:16]
    return f"{safe_url}|{what}|{column}"


def encode(value: Any) -> dict[str, Any]:
    if hasattr(value, "item") and not isinstance(value, (datetime, date)):  # numpy scalar
        value = value.item()
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        value = value.to_pydatetime()
    if isinstance(value, bool):
        raise TypeError("a boolean column cannot be an incremental column")
    if isinstance(value, int):
        return {"value": value, "type": "int"}
    if isinstance(value, float):
        return {"value": value, "type": "float"}
    if isinstance(value, datetime):
        return {"value": value.isoformat(), "type": "datetime"}
    if isinstance(value, date):
        return {"value": value.isoformat(), "type": "date"}
    return {"value": str(value), "type": "str"}


def decode(item: dict[str, Any]) -> Any:
    kind, value = item["type"], item["value"]
    if kind == "datetime":
        return datetime.fromisoformat(value)
    if kind == "date":
        return date.fromisoformat(value)
    return {"int": int, "float": float}.get(kind, str)(value)


def _load(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {"committed": {}, "pending": {}}
    data = json.loads(path.read_text())
    data.setdefault("committed", {})
    data.setdefault("pending", {})
    return data


def _save(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)  # atomic: a crash never leaves half a state file


def committed(path: str | Path, key: str) -> Any | None:
    item = _load(Path(path))["committed"].get(key)
    return decode(item) if item else None


def record(path: str | Path, key: str, value: Any, *, commit: bool) -> None:
    """Record a new watermark as pending (or committed right away)."""
    path = Path(path)
    data = _load(path)
    data["committed" if commit else "pending"][key] = encode(value)
    if commit:
        data["pending"].pop(key, None)
    _save(path, data)


def commit(path: str | Path, key: str) -> bool:
    """Make the pending watermark of ``key`` the committed one; False when nothing was pending."""
    path = Path(path)
    data = _load(path)
    item = data["pending"].pop(key, None)
    if item is None:
        return False
    data["committed"][key] = item
    _save(path, data)
    return True


def commit_pending(source_cfg: Any) -> bool:
    """Commit the watermark of the source described by a (validated) ``source`` config section."""
    inc = source_cfg.incremental
    key = source_key(resolve_url(source_cfg), source_cfg.table, source_cfg.query, inc.column)
    return commit(inc.state_file, key)
