"""Labels that arrive later (``monitor.feedback``): joined to the logged predictions by
``request_id``, they give target drift (labels against the reference target) and the model's
quality on the window: accuracy for a classifier, MAE and RMSE (target units) for a regression
model, whose log holds the predicted value."""

from __future__ import annotations

from typing import Any

from aiinfra.errors import DataValidationError
from aiinfra.monitoring import stats, typed_columns
from aiinfra.monitoring.engine import ColumnPlan, Reference, as_labels, judge_column, summarize
from aiinfra.monitoring.windows import PREDICTION, REQUEST_ID, CurrentData, open_file
from aiinfra.storage.urls import redact

RECEIVED = "received"  # when the server stored a label (aiinfra.serving.feedback)


def read_labels(path: str, target: str, server_cfg: Any = None) -> Any:
    """``request_id`` and ``target`` from a feedback file or directory (the server's
    ``POST /v2/models/{name}/feedback`` writes one), one label per request id: a request labelled
    again (a correction) counts once, with its latest label. Encrypted parts are decrypted with
    ``server_cfg.log_privacy``'s keys; a hashed ``request_id`` is hashed in the prediction log with
    the same key, so the join is unchanged."""
    import pyarrow as pa
    import pyarrow.compute as pc

    labels = open_file(path, server_cfg)  # a local path or an object-store URL
    missing = [c for c in (REQUEST_ID, target) if c not in labels.names]
    if missing:
        raise DataValidationError(
            f"feedback file {redact(path)} lacks column(s) {', '.join(map(str, missing))}",
            hint=f"it needs '{REQUEST_ID}' (as logged by the server) and the target '{target}'",
        )
    timed = RECEIVED in labels.names
    table = labels.table([REQUEST_ID, target, *([RECEIVED] if timed else [])])
    if table.num_rows == 0 or pc.count_distinct(table.column(REQUEST_ID)).as_py() == table.num_rows:
        return table.select([REQUEST_ID, target])
    # the latest label per request id: rows in time order (file order without times), keep the last
    if timed:
        table = table.take(pc.sort_indices(table, [(RECEIVED, "ascending")]))
    table = table.append_column("__row", pa.array(range(table.num_rows), pa.int64()))
    last = table.group_by(REQUEST_ID).aggregate([("__row", "max")]).column("__row_max")
    return table.take(last).select([REQUEST_ID, target])


def evaluate(path: str, reference: Reference, current: CurrentData, server_cfg: Any = None) -> dict:
    import pyarrow.compute as pc

    target = reference.meta.get("target")
    lacking = [c for c in (REQUEST_ID, PREDICTION) if c not in current.names]
    if lacking:
        raise DataValidationError(
            f"feedback is joined by request id, but the current data ({current.description}) lacks "
            f"{', '.join(lacking)}",
            hint="monitor the prediction log (monitor.current=null), or set monitor.feedback=null",
        )
    truth = read_labels(path, target, server_cfg).rename_columns([REQUEST_ID, "__label"])
    window = current.table([REQUEST_ID, PREDICTION])
    joined = window.join(truth, keys=REQUEST_ID, join_type="inner")
    out: dict[str, Any] = {"path": redact(path), "labelled_rows": joined.num_rows, "window_rows": window.num_rows}
    regression = reference.task == "regression"
    if joined.num_rows == 0:
        out.update(accuracy=None, target=None, note="no logged request id has a label yet")
        if regression:
            out.update(mae=None, rmse=None)
        return out
    if regression:
        return _regression(out, joined, reference, target)
    y, p = as_labels(joined.column("__label")), as_labels(joined.column(PREDICTION))
    out["accuracy"] = float(pc.mean(pc.cast(pc.equal(y, p), "int64")).as_py())
    plan = ColumnPlan(target, target, stats.CATEGORICAL, None, None, counted=False)
    result = judge_column(
        plan, summarize(as_labels(reference.table.column(target)), stats.CATEGORICAL), summarize(y, stats.CATEGORICAL)
    )
    out["target"] = result
    return out


def _regression(out: dict, joined: Any, reference: Reference, target: str) -> dict:
    """MAE and RMSE of the logged values against the labels; target drift with a numeric method."""
    import numpy as np

    y = typed_columns.convert(joined.column("__label"), typed_columns.VALUES).to_numpy(zero_copy_only=False)
    p = typed_columns.convert(joined.column(PREDICTION), typed_columns.VALUES).to_numpy(zero_copy_only=False)
    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
    ok = np.isfinite(y) & np.isfinite(p)  # a missing label or value cannot be scored
    err = p[ok] - y[ok]
    out["accuracy"] = None
    out["scored_rows"] = int(ok.sum())
    out["mae"] = float(np.mean(np.abs(err))) if err.size else None
    out["rmse"] = float(np.sqrt(np.mean(err**2))) if err.size else None
    plan = ColumnPlan(
        target, target, stats.NUMERICAL, None, None, counted=False, role="target",
        compared_as=typed_columns.VALUES, typed=True,
    )  # fmt: skip
    ref_values = typed_columns.convert(reference.table.column(target), typed_columns.VALUES)
    out["target"] = judge_column(plan, summarize(ref_values, stats.NUMERICAL), stats.numeric_summary(y))
    return out
