"""Prometheus gauges of a drift verdict: for the server's ``/metrics`` and a textfile collector.

``drift_gauges(verdict)`` returns plain tuples, so the server can publish them with its own
prometheus_client registry; ``write_textfile`` writes ``<report_dir>/drift.prom`` for
node_exporter's textfile collector. Standard library only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: (name, help) of every gauge this module emits
GAUGES = {
    "aiinfra_drift_detected": "1 when the last monitor run found dataset drift",
    "aiinfra_drift_share": "share of monitored columns that drifted in the last run",
    "aiinfra_drift_share_threshold": "dataset drift when drift_share >= this",
    "aiinfra_drift_column_score": "drift score of a column (its method's statistic or p-value)",
    "aiinfra_drift_column_threshold": "drift threshold of a column's method",
    "aiinfra_drift_column_drifted": "1 when the column drifted in the last run",
    "aiinfra_drift_rows": "rows of the current window in the last run",
    "aiinfra_drift_last_run_timestamp_seconds": "when the last monitor run finished (unix time)",
    "aiinfra_feedback_accuracy": "accuracy of the logged predictions whose labels arrived (feedback)",
    "aiinfra_feedback_labelled_rows": "logged predictions of the window with a label",
    "aiinfra_feedback_mae": "mean absolute error of the logged values whose labels arrived (regression)",
    "aiinfra_feedback_rmse": "root mean squared error of the logged values whose labels arrived (regression)",
    "aiinfra_drift_column_missing_share": "share of missing values of a column in the window (data contract)",
    "aiinfra_drift_column_unseen_share": "share of rows whose category the data contract lacks",
    "aiinfra_monitor_breaches": "data- and model-quality thresholds breached in the last run",
    "aiinfra_monitor_alert": "1 when the last run found drift or breached a threshold",
}


def drift_gauges(verdict: Mapping[str, Any]) -> list[tuple[str, dict[str, str], float]]:
    """``[(metric name, labels, value)]`` for one verdict (see :data:`GAUGES`)."""
    out: list[tuple[str, dict[str, str], float]] = [
        ("aiinfra_drift_detected", {}, float(bool(verdict.get("drift_detected")))),
        ("aiinfra_drift_share", {}, float(verdict.get("drift_share") or 0.0)),
        ("aiinfra_drift_share_threshold", {}, float(verdict.get("threshold") or 0.0)),
        ("aiinfra_drift_rows", {}, float(verdict.get("rows", {}).get("current") or 0)),
    ]
    if verdict.get("finished_unix"):
        out.append(("aiinfra_drift_last_run_timestamp_seconds", {}, float(verdict["finished_unix"])))
    fb = verdict.get("feedback") or {}
    if fb.get("accuracy") is not None:
        out.append(("aiinfra_feedback_accuracy", {}, float(fb["accuracy"])))
    for key in ("mae", "rmse"):
        if fb.get(key) is not None:
            out.append((f"aiinfra_feedback_{key}", {}, float(fb[key])))
    if fb:
        out.append(("aiinfra_feedback_labelled_rows", {}, float(fb.get("labelled_rows") or 0)))
    if "breaches" in verdict:  # verdicts before thresholds have neither
        out.append(("aiinfra_monitor_breaches", {}, float(len(verdict["breaches"] or []))))
        out.append(("aiinfra_monitor_alert", {}, float(bool(verdict.get("alert")))))
    for name, col in verdict.get("columns", {}).items():
        labels = {"column": str(name), "method": str(col.get("method"))}
        if col.get("score") is not None:
            out.append(("aiinfra_drift_column_score", labels, float(col["score"])))
        if col.get("threshold") is not None:
            out.append(("aiinfra_drift_column_threshold", labels, float(col["threshold"])))
        out.append(("aiinfra_drift_column_drifted", {"column": str(name)}, float(bool(col.get("drifted")))))
        if "feature_type" in col:  # typed by a data contract
            out.append(
                ("aiinfra_drift_column_missing_share", {"column": str(name)}, float(col["missing_share_current"]))
            )
            if col.get("unseen_share_current") is not None:
                share = float(col["unseen_share_current"])
                out.append(("aiinfra_drift_column_unseen_share", {"column": str(name)}, share))
    return out


def _number(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def exposition(verdict: Mapping[str, Any]) -> str:
    """The gauges in Prometheus text exposition format, one group per metric (the format wants
    every sample of a metric together; the per-column gauges come out interleaved)."""
    families: dict[str, list[tuple[dict[str, str], float]]] = {}
    for name, labels, value in drift_gauges(verdict):
        families.setdefault(name, []).append((labels, value))
    lines: list[str] = []
    for name, samples in families.items():
        lines += [f"# HELP {name} {GAUGES[name]}", f"# TYPE {name} gauge"]
        for labels, value in samples:
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            lines.append(f"{name}{{{label_text}}} {_number(value)}" if label_text else f"{name} {_number(value)}")
    return "\n".join(lines) + "\n"


def write_textfile(verdict: Mapping[str, Any], path: str | Path) -> Path:
    """Write atomically (the collector must never read half a file)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(exposition(verdict))
    os.replace(tmp, p)
    return p
