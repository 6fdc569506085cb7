"""The monitor's thresholds besides drift: data quality per column, model quality from feedback.

A breached threshold is one :class:`~aiinfra.monitoring.verdict.Breach` in the verdict's
``breaches``; the verdict's ``alert`` (drift or a breach) is what the sinks, the
``aiinfra_on_drift`` hook, the retrain policy and the exit status act on. Standard library only.

* ``max_unseen_share``: a categorical/boolean column's share of window rows whose category is not
  one of the data contract's (the encoder maps them all to one "unknown" input);
* ``max_null_increase``: a column's missing share in the window minus the train split's (the
  contract's ``null_share``; the reference sample's when the contract lacks it);
* ``min_accuracy`` (classification), ``max_mae``, ``max_rmse`` (regression): on the window's rows
  with feedback labels, once ``min_labelled_rows`` of them arrived.

The data-quality checks need a data contract: without one (data prepared before contracts) the
verdict is what it always was.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiinfra.monitoring.schema import Check, DriftMonitorConfig
from aiinfra.monitoring.verdict import Breach


def configured(mon: DriftMonitorConfig) -> dict[str, float | int | None]:
    """The thresholds of this run (written to the verdict and the history, drawn on the charts)."""
    keys = ("max_unseen_share", "max_null_increase", "min_accuracy", "max_mae", "max_rmse", "min_labelled_rows")
    return {key: getattr(mon, key) for key in keys}


def breaches(
    mon: DriftMonitorConfig, columns: Mapping[str, Mapping[str, Any]], feedback: Mapping[str, Any] | None
) -> list[Breach]:
    out: list[Breach] = []
    for name, col in columns.items():
        if "feature_type" not in col:  # no contract: no data-quality checks (as before)
            continue
        unseen = col.get("unseen_share_current")
        if mon.max_unseen_share is not None and unseen is not None and unseen > mon.max_unseen_share:
            seen = ", ".join(f"{k!r} ({n})" for k, n in (col.get("unseen_values") or {}).items())
            out.append(
                Breach(
                    check=str(Check.unseen_share),
                    column=name,
                    value=unseen,
                    threshold=mon.max_unseen_share,
                    message=f"column '{name}': {unseen:.1%} of the window's rows have a category the "
                    f"model never saw (max {mon.max_unseen_share:.1%})" + (f": {seen}" if seen else ""),
                )
            )
        baseline = col.get("null_share_train")
        if baseline is None:
            baseline = col.get("missing_share_reference", 0.0)
        increase = float(col.get("missing_share_current", 0.0)) - float(baseline)
        if mon.max_null_increase is not None and increase > mon.max_null_increase:
            out.append(
                Breach(
                    check=str(Check.null_increase),
                    column=name,
                    value=increase,
                    threshold=mon.max_null_increase,
                    message=f"column '{name}': {col.get('missing_share_current', 0.0):.1%} missing in the "
                    f"window, {float(baseline):.1%} in training (increase {increase:.1%}, max "
                    f"{mon.max_null_increase:.1%})",
                )
            )
    out += _quality(mon, feedback or {})
    return out


def _quality(mon: DriftMonitorConfig, feedback: Mapping[str, Any]) -> list[Breach]:
    labelled = int(feedback.get("labelled_rows") or 0)
    if labelled < mon.min_labelled_rows:
        return []
    out: list[Breach] = []
    rules = (
        (Check.accuracy, "accuracy", mon.min_accuracy, "below"),
        (Check.mae, "mae", mon.max_mae, "above"),
        (Check.rmse, "rmse", mon.max_rmse, "above"),
    )
    for check, key, threshold, side in rules:
        value = feedback.get(key)
        if threshold is None or value is None:
            continue
        broken = value < threshold if side == "below" else value > threshold
        if broken:
            out.append(
                Breach(
                    check=str(check),
                    value=float(value),
                    threshold=float(threshold),
                    message=f"{key.upper() if key != 'accuracy' else key} {value:.4g} on {labelled} labelled rows "
                    f"is {side} the threshold {threshold:g}",
                )
            )
    return out
