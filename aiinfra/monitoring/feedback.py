"""Labels that arrive later (``monitor.feedback``): joined to the logged predictions by
``request_id``, they give target drift (labels against the reference target) and the model's
accuracy on the window."""

from __future__ import annotations

from typing import Any

from aiinfra.errors import DataValidationError
from aiinfra.monitoring import stats
from aiinfra.monitoring.engine import ColumnPlan, Reference, as_labels, judge_column, summarize
from aiinfra.monitoring.windows import PREDICTION, REQUEST_ID, CurrentData, open_file

RECEIVED = "received"  # when the server stored a label (aiinfra.serving.feedback)


def read_labels(path: str, target: str) -> Any:
    """``request_id`` and ``target`` from a feedback file or directory (the server's
    ``POST /v2/models/{name}/feedback`` writes one), one label per request id: a request labelled
    again (a correction) counts once, with its latest label."""
    import pyarrow as pa
    import pyarrow.compute as pc

    labels = open_file(path)
    missing = [c for c in (REQUEST_ID, target) if c not in labels.names]
    if missing:
        raise DataValidationError(
            f"feedback file {path} lacks column(s) {', '.join(map(str, missing))}",
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


def evaluate(path: str, reference: Reference, current: CurrentData) -> dict:
    import pyarrow.compute as pc

    target = reference.meta.get("target")
    lacking = [c for c in (REQUEST_ID, PREDICTION) if c not in current.names]
    if lacking:
        raise DataValidationError(
            f"feedback is joined by request id, but the current data ({current.description}) lacks "
            f"{', '.join(lacking)}",
            hint="monitor the prediction log (monitor.current=null), or set monitor.feedback=null",
        )
    truth = read_labels(path, target).rename_columns([REQUEST_ID, "__label"])
    window = current.table([REQUEST_ID, PREDICTION])
    joined = window.join(truth, keys=REQUEST_ID, join_type="inner")
    out: dict[str, Any] = {"path": str(path), "labelled_rows": joined.num_rows, "window_rows": window.num_rows}
    if joined.num_rows == 0:
        out.update(accuracy=None, target=None, note="no logged request id has a label yet")
        return out
    y, p = as_labels(joined.column("__label")), as_labels(joined.column(PREDICTION))
    out["accuracy"] = float(pc.mean(pc.cast(pc.equal(y, p), "int64")).as_py())
    plan = ColumnPlan(target, target, stats.CATEGORICAL, None, None, counted=False)
    result = judge_column(
        plan, summarize(as_labels(reference.table.column(target)), stats.CATEGORICAL), summarize(y, stats.CATEGORICAL)
    )
    out["target"] = result
    return out
