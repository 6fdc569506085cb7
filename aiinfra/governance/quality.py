"""The data-quality profile of the prepared data, and what changed since the previous prepare.

``prepare`` profiles the rows it already holds (one pass with pandas): rows per split and, per
column, its type (the data contract's), null share, distinct values, the top categories with
counts and the numeric range. It is written to ``<paths.prepared>/profile.json`` and compared
with the profile there from the run before: a column added or removed, a type changed, a null
share up by more than ``audit.max_null_increase``, new categories, a range that moved. When
``dvc repro`` has deleted that folder first, the previous profile is the last prepare's in the
run ledger (a copy under ``<paths.logs>/profiles/`` named by the hash its record carries). Per
``audit.data_quality`` each change is a warning (``warn``), all of them one
:class:`~aiinfra.errors.DataValidationError` before anything is written (``fail``), or only
recorded (``off``). The changes go into prepare's outputs, so the run ledger carries them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from aiinfra.errors import DataValidationError
from aiinfra.storage import urls

log = logging.getLogger(__name__)

PROFILE = "profile.json"
PROFILES = "profiles"  # under paths.logs: a copy of each profile, named by its hash
TOP_CATEGORIES = 50
#: a range bound that moves by more than this share of the previous range is a change
RANGE_SHIFT = 0.05
#: warnings logged one per change up to this many; the rest counted in one line
MAX_WARNINGS = 20


def _null_mask(series):
    mask = series.isna()
    if series.dtype == object:  # a CSV's blank field is a gap too
        mask = mask | series.map(lambda v: isinstance(v, str) and not v.strip())
    return mask


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def profile(frame: Any, rows: dict[str, int], contract: Any = None) -> dict[str, Any]:
    """The profile of ``frame`` (every prepared row: features and target); ``rows``: per split;
    ``contract``: the :class:`~aiinfra.data.contract.DataContract` whose types the columns take
    (without one, the pandas dtype)."""
    import pandas as pd

    types: dict[str, str] = {}
    if contract is not None:
        types = {c.name: str(c.type) for c in contract.columns}
        types[contract.target] = str(contract.target_type)
        types.update({name: "dropped" for name in contract.dropped})
    total = len(frame)
    columns: dict[str, Any] = {}
    for name in frame.columns:
        series = frame[name]
        nulls = _null_mask(series)
        present = series[~nulls]
        kind = types.get(str(name), str(series.dtype))
        entry: dict[str, Any] = {
            "type": kind,
            "dtype": str(series.dtype),
            "null_share": round(float(nulls.mean()) if total else 0.0, 6),
            "distinct": int(present.nunique()),
        }
        untyped_strings = kind not in ("numeric", "text", "datetime") and series.dtype == object
        if kind in ("categorical", "boolean") or untyped_strings:
            counts = present.astype(str).value_counts()
            entry["categories"] = {str(k): int(v) for k, v in counts.head(TOP_CATEGORIES).items()}
            entry["categories_complete"] = len(counts) <= TOP_CATEGORIES
        elif pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series) and len(present):
            entry["min"], entry["max"] = float(_plain(present.min())), float(_plain(present.max()))
        columns[str(name)] = entry
    return {"format": 1, "rows": dict(rows), "total_rows": total, "columns": columns}


def profile_from_stats(stats: dict[str, Any], rows: dict[str, int], contract: Any, sample: Any) -> dict[str, Any]:
    """The same profile as :func:`profile`, from the streaming prepare's exact per-column
    statistics over every row (:mod:`aiinfra.data.stream_stats`); ``sample``: the train sample,
    for the pandas dtype of each column. Distinct counts stop at that module's cap."""
    types = {c.name: str(c.type) for c in contract.columns}
    types[contract.target] = str(contract.target_type)
    types.update({name: "dropped" for name in contract.dropped})
    columns: dict[str, Any] = {}
    for name in sample.columns:
        stat, dtype = stats[name], sample[name].dtype
        kind = types.get(str(name), str(dtype))
        entry: dict[str, Any] = {
            "type": kind,
            "dtype": str(dtype),
            "null_share": round(stat["raw_nulls"] / stat["rows"], 6) if stat["rows"] else 0.0,
            "distinct": len(stat["counts"]),
        }
        untyped_strings = kind not in ("numeric", "text", "datetime") and dtype.kind == "O"
        if kind in ("categorical", "boolean") or untyped_strings:
            counts = stat["raw_counts"] or stat["counts"]
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
            entry["categories"] = {str(k): int(v) for k, v in ranked[:TOP_CATEGORIES]}
            entry["categories_complete"] = len(counts) <= TOP_CATEGORIES and not stat["capped"]
        elif stat["raw_min"] is not None and dtype.kind in "iuf":
            entry["min"], entry["max"] = float(stat["raw_min"]), float(stat["raw_max"])
        columns[str(name)] = entry
    return {"format": 1, "rows": dict(rows), "total_rows": sum(rows.values()), "columns": columns}


def compare(old: dict[str, Any], new: dict[str, Any], max_null_increase: float) -> list[dict[str, Any]]:
    """Changes from profile ``old`` to ``new``: ``{"column", "kind", "message"}`` each, kinds
    ``added``, ``removed``, ``type``, ``nulls``, ``categories``, ``range``."""
    changes: list[dict[str, Any]] = []

    def add(column: str, kind: str, message: str) -> None:
        changes.append({"column": column, "kind": kind, "message": f"column '{column}': {message}"})

    before, after = old.get("columns", {}), new.get("columns", {})
    for name in after:
        if name not in before:
            add(name, "added", f"new column ({after[name]['type']})")
    for name in before:
        if name not in after:
            add(name, "removed", "no longer in the data")
    for name in (n for n in after if n in before):
        a, b = before[name], after[name]
        if a.get("type") != b.get("type"):
            add(name, "type", f"type {a.get('type')} -> {b.get('type')}")
        rise = b.get("null_share", 0.0) - a.get("null_share", 0.0)
        if rise > max_null_increase:
            add(
                name,
                "nulls",
                f"null share {a.get('null_share', 0):.1%} -> {b.get('null_share', 0):.1%}"
                f" (up more than audit.max_null_increase={max_null_increase:g})",
            )
        if "categories" in a and "categories" in b and a.get("categories_complete", True):
            new_cats = [c for c in b["categories"] if c not in a["categories"]]
            if new_cats:
                shown = ", ".join(repr(c) for c in new_cats[:5]) + (" ..." if len(new_cats) > 5 else "")
                add(name, "categories", f"{len(new_cats)} new categor{'y' if len(new_cats) == 1 else 'ies'}: {shown}")
        if "min" in a and "min" in b:
            span = (a["max"] - a["min"]) or abs(a["max"]) or 1.0
            if abs(b["min"] - a["min"]) > RANGE_SHIFT * span or abs(b["max"] - a["max"]) > RANGE_SHIFT * span:
                add(name, "range", f"range [{a['min']:g}, {a['max']:g}] -> [{b['min']:g}, {b['max']:g}]")
    return changes


def summary(changes: list[dict[str, Any]], names: int = 8) -> str:
    """One line for many changes: added and removed columns grouped (a switched source is two
    items, not forty), every other change as it is."""
    parts = []
    for kind, verb in (("added", "new column(s)"), ("removed", "column(s) gone")):
        cols = [c["column"] for c in changes if c["kind"] == kind]
        if cols:
            more = f" and {len(cols) - names} more" if len(cols) > names else ""
            parts.append(f"{len(cols)} {verb}: {', '.join(cols[:names])}{more}")
    parts += [c["message"] for c in changes if c["kind"] not in ("added", "removed")]
    return "; ".join(parts)


def read_profile(directory: str | Path) -> dict[str, Any] | None:
    """The profile ``prepare`` wrote last into ``directory``, or None (first run, unreadable)."""
    try:
        loaded = json.loads(urls.read_text(urls.join(directory, PROFILE)))
        return loaded if isinstance(loaded, dict) and "columns" in loaded else None
    except (OSError, ValueError, urls.StorageError):
        return None


def _digest(profile: dict[str, Any]) -> tuple[str, bytes]:
    text = json.dumps(profile, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(text).hexdigest(), text


def _stored(cfg: Any, digest: str) -> Path:
    return Path(cfg.paths.logs) / PROFILES / (digest.replace(":", "-") + ".json")


def store_profile(cfg: Any, profile: dict[str, Any]) -> str:
    """Keep a copy of ``profile`` under ``<paths.logs>/profiles/``, named by its hash; returns the
    hash, which prepare's ledger record carries (so the copy is as tamper-evident as the chain)."""
    digest, text = _digest(profile)
    path = _stored(cfg, digest)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text)
    return digest


def ledger_profile(cfg: Any) -> dict[str, Any] | None:
    """The profile of the last successful ``prepare`` in the run ledger (its stored copy, checked
    against the hash the record names), or None. ``dvc repro`` deletes ``data/prepared`` before
    it runs prepare, so the profile there is gone: this is where the comparison finds it then."""
    from aiinfra.governance.ledger import read_ledger

    for record in reversed(read_ledger(cfg)):
        dq = (record.get("results") or {}).get("data_quality") if record.get("stage") == "prepare" else None
        digest = dq.get("profile") if isinstance(dq, dict) and record.get("status") == "ok" else None
        if not isinstance(digest, str):
            continue
        try:
            loaded = json.loads(_stored(cfg, digest).read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(loaded, dict) or _digest(loaded)[0] != digest:
            log.warning("data quality: the stored profile %s does not match its hash; not compared", digest)
            return None
        return loaded
    return None


def check(cfg: Any, current: dict[str, Any]) -> dict[str, Any]:
    """Compare ``current`` with the previous profile and act per ``cfg.audit.data_quality``;
    returns what prepare puts into its outputs (``data_quality``). Raises on ``fail``. The
    previous profile: ``profile.json`` in ``paths.prepared``, else the last prepare's in the ledger."""
    action = str(cfg.audit.data_quality)
    previous = read_profile(cfg.paths.prepared)
    if previous is None and action != "off":
        previous = ledger_profile(cfg)
    changes = [] if previous is None or action == "off" else compare(previous, current, cfg.audit.max_null_increase)
    if changes and action == "fail":
        listed = summary(changes)
        raise DataValidationError(
            f"the data changed since the last prepare ({len(changes)} change(s)): {listed}. Nothing was written.",
            hint="fix the source, or accept the change: aiinfra prepare audit.data_quality=warn "
            "(the new profile then becomes the one compared against)",
        )
    for change in changes[:MAX_WARNINGS]:
        log.warning("data quality: %s (since the last prepare)", change["message"])
    if len(changes) > MAX_WARNINGS:
        log.warning("data quality: ... and %d more change(s) (profile.json)", len(changes) - MAX_WARNINGS)
    return {
        "action": action,
        "compared": previous is not None and action != "off",
        "rows": current["rows"],
        "columns": len(current["columns"]),
        "changes": changes,
    }


def write_profile(cfg: Any, current: dict[str, Any], outputs: dict[str, Any]) -> str:
    """``profile.json`` beside the prepared data (a local path or a URL), and its hash-named copy
    under ``paths.logs`` (named in ``outputs["profile"]``, the ``data_quality`` part of prepare's
    outputs)."""
    path = urls.join(cfg.paths.prepared, PROFILE)
    urls.write_text(path, json.dumps(current, indent=2))
    outputs["profile"] = store_profile(cfg, current)
    return path
