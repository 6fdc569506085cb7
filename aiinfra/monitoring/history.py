"""Drift over time: one JSON line per run (``history.jsonl``), drawn by :mod:`charts` as
``drift_over_time.html`` (drift share, per-column scores, missing and unseen shares, prediction and
target drift, and with feedback labels the model's accuracy or MAE/RMSE, per run).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HISTORY = "history.jsonl"
PLOT = "drift_over_time.html"


_KEPT = ("method", "score", "threshold", "drifted")
#: kept too when the verdict has them (columns typed by a data contract)
_TYPED = ("feature_type", "missing_share_current", "null_share_train", "unseen_share_current")


def _brief(column: Mapping[str, Any] | None) -> dict | None:
    if not column:
        return None
    return {k: column.get(k) for k in _KEPT} | {k: column[k] for k in _TYPED if k in column}


def history_record(verdict: Mapping[str, Any]) -> dict:
    """What a run contributes to the history (small: no paths, no per-column extras)."""
    feedback = verdict.get("feedback") or {}
    return {
        "finished": verdict.get("finished"),
        "drift_detected": verdict.get("drift_detected"),
        "drift_share": verdict.get("drift_share"),
        "threshold": verdict.get("threshold"),
        "rows": verdict.get("rows", {}).get("current"),
        "current": verdict.get("current"),
        # model quality over time: accuracy on the rows whose labels have arrived
        "accuracy": feedback.get("accuracy"),
        "mae": feedback.get("mae"),  # regression
        "rmse": feedback.get("rmse"),
        "labelled_rows": feedback.get("labelled_rows"),
        "task": verdict.get("task"),
        "alert": verdict.get("alert", verdict.get("drift_detected")),
        "breaches": [{k: b.get(k) for k in ("check", "column", "value")} for b in verdict.get("breaches") or []],
        "thresholds": verdict.get("thresholds") or {},
        "prediction": _brief(verdict.get("prediction")),
        # target drift: labels in a labelled file, or feedback labels joined to the log
        "target": _brief(verdict.get("target") or feedback.get("target")),
        "columns": {name: _brief(c) for name, c in verdict.get("columns", {}).items()},
    }


def append(report_dir: str | Path, verdict: Mapping[str, Any]) -> Path:
    path = Path(report_dir) / HISTORY
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(history_record(verdict), default=str) + "\n"
    with path.open("a+b") as fh:
        fh.seek(0, 2)
        if fh.tell():
            fh.seek(-1, 2)
            if fh.read(1) != b"\n":  # a torn last line (a run killed mid-write): don't glue onto it
                line = "\n" + line
        fh.write(line.encode("utf-8"))
    return path


def load(path: str | Path) -> list[dict]:
    runs = []
    p = Path(path)
    if not p.is_file():
        return runs
    for line in p.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                runs.append(json.loads(line))
            except ValueError:  # a torn last line (killed mid-write) must not hide the rest
                continue
    return runs


def render(history_path: str | Path, out_path: str | Path | None = None) -> Path:
    """Write the drift-over-time page for the runs in ``history_path`` (:mod:`charts`)."""
    from aiinfra.monitoring import charts

    out = Path(out_path) if out_path else Path(history_path).with_name(PLOT)
    return charts.write_page(load(history_path), out)
