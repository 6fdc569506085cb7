"""Evidently's own verdict, the yardstick for the agreement test and ``bench/monitor_bench.py``.

Not part of the package: the monitor computes its verdict itself (:mod:`aiinfra.monitoring.stats`)
and uses Evidently only for the report.
"""

from __future__ import annotations

from typing import Any

from aiinfra.monitoring import stats
from aiinfra.runner import setup_environment


def evidently_columns(snapshot: dict) -> dict[str, Any]:
    """Per-column verdicts out of an Evidently snapshot dict (``snapshot.dict()``).

    Returns ``{"columns": {name: {method, score, threshold, drifted}}, "share": float | None,
    "drift_detected": bool | None}``; a column drifted when its "Value Drift" test failed.
    """
    columns: dict[str, dict] = {}
    share = detected = None
    for metric in snapshot.get("metrics", []):
        config = metric.get("config", {})
        kind = str(config.get("type", ""))
        if kind.endswith("ValueDrift"):
            method = str(config.get("method"))
            columns[config["column"]] = {
                "method": stats.DISPLAY_TO_METHOD.get(method, method),
                "score": float(metric["value"]),
                "threshold": config.get("threshold"),
            }
        elif kind.endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
    for test in snapshot.get("tests", []):
        name = str(test.get("name", ""))
        if name.startswith("Value Drift for column "):
            col = name[len("Value Drift for column ") :]
            if col in columns:
                columns[col]["drifted"] = test.get("status") == "FAIL"
        elif name.startswith("Share of Drifted Columns"):
            detected = test.get("status") == "FAIL"
    return {"columns": columns, "share": share, "drift_detected": detected}


def evidently_direct(
    reference: Any,
    current: Any,
    *,
    numerical: list[str],
    categorical: list[str],
    drift_share: float = 0.5,
    method: str | None = None,
    per_column_method: dict | None = None,
    per_column_threshold: dict | None = None,
) -> dict:
    """Evidently's own ``DataDriftPreset`` on whole pandas frames; returns :func:`evidently_columns`."""
    setup_environment()  # DO_NOT_TRACK before Evidently is imported
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    preset = DataDriftPreset(
        columns=numerical + categorical,
        drift_share=drift_share,
        method=method,
        per_column_method=per_column_method or None,
        per_column_threshold=per_column_threshold or None,
    )
    snapshot = Report([preset], include_tests=True).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    return evidently_columns(snapshot.dict())
