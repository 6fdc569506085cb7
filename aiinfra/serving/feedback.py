"""Labels that arrive after the prediction: ``POST /v2/models/{name}/feedback``.

A client that learns the true outcome of a request (a fraud confirmed, a churned customer) sends
it with the request id the server answered with (``X-Request-ID``, the V2 ``id``)::

    {"labels": [{"request_id": "r-1", "label": 1}, {"request_id": "r-2", "label": 0}]}

Each label must be one of the served model's classes (the error lists them); a regression model's
label is the observed value, a finite number. The labels are
written as one Parquet part file per request before the answer, so a 200 means they are stored
(on an object store, ``server.feedback_dir=s3://...``, one PUT per part, visible only when whole)::

    <feedback_dir>/date=YYYY-MM-DD/part-<UTC time>-<pid>-<random>.parquet   (hive partitioning)

    request_id     string
    <target>       the label, typed like the model's classes (and the log's ``prediction``)
    received       timestamp[us, tz=UTC]
    model_name     string   (served when the label arrived)
    model_version  string

With ``server.log_privacy`` a hashed ``request_id`` is hashed with the prediction log's key (the
join still works) and the parts are encrypted like the log's.

``aiinfra monitor monitor.feedback=<feedback_dir>`` joins them to the prediction log by request id:
accuracy and target drift per window, and, with ``monitor.retrain.policy=retrain``, the labelled
rows to retrain on. A request id labelled twice counts once, with its latest label.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from aiinfra.serving.protocol import RequestError, loads, request_id_problem, shown
from aiinfra.storage import urls


def canonical(value: Any) -> str | None:
    """A label's comparable form: ``1``, ``1.0`` and ``"1"`` are the same class; None if it is
    not a scalar."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    if isinstance(value, str):
        return value
    return None


def parse(
    body: bytes, classes: np.ndarray, target: str, max_rows: int, regression: bool = False
) -> tuple[list[str], np.ndarray]:
    """The request ids and the labels as the model's classes (regression: float64 values); a
    RequestError naming the problem."""
    data = loads(body)
    rows = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not rows:
        raise RequestError(
            422,
            'send {"labels": [{"request_id": "<id the server answered with>", '
            '"label": <the true class>}, ...]} with at least one label',
        )
    if len(rows) > max_rows:
        raise RequestError(413, f"{len(rows)} labels in one request; at most {max_rows} (server.max_rows)")
    by_text = {canonical(c): i for i, c in enumerate(classes.tolist())}
    ids, index = [], np.empty(len(rows), dtype=np.int64)
    values = np.empty(len(rows), dtype=np.float64)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise RequestError(422, f"labels[{i}] is not an object with request_id and label")
        rid = row.get("request_id")
        problem = request_id_problem(rid)
        if problem:
            raise RequestError(422, f"labels[{i}].request_id {problem} (send the request id the server answered with)")
        # "label", or the training target's own name (a row copied from a labelled table)
        value = row.get("label", row.get(target))
        if value is None:
            raise RequestError(422, f'labels[{i}] has no label: send {{"request_id": ..., "label": <the true class>}}')
        if regression:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
                raise RequestError(
                    422, f"labels[{i}].label {shown(value)} is not a finite number (this model predicts values)"
                )
            ids.append(rid)
            values[i] = float(value)
            continue
        k = by_text.get(canonical(value))
        if k is None:
            names = ", ".join(repr(c) for c in classes.tolist()[:20])
            raise RequestError(422, f"labels[{i}].label {shown(value)} is not one of the model's classes: {names}")
        ids.append(rid)
        index[i] = k
    return ids, values if regression else classes[index]


def _finite(value: int | float) -> bool:
    try:
        return bool(np.isfinite(float(value)))
    except OverflowError:  # an integer beyond float64
        return False


class FeedbackStore:
    """Writes each accepted request's labels as one Parquet part file (atomically renamed).

    ``privacy`` (:class:`aiinfra.serving.privacy.LogPrivacy`): the prediction log's policies and
    encryption, so a hashed ``request_id`` is hashed with the same key here and the labels still
    join; the label column itself is kept (it is what feedback is for)."""

    def __init__(self, directory: str | Path, privacy: Any = None):
        # an object-store URL stays a string (a Path would turn s3://b into the local ./s3:/b)
        self.dir: Path | str = urls.absolute(directory) if urls.is_remote(directory) else Path(directory)
        self.rows_written = 0
        self.privacy = privacy

    def write(self, ids: list[str], labels: np.ndarray, target: str, model_name: str, model_version: str) -> Path | str:

        now = datetime.now(UTC)
        n = len(ids)
        cols = {
            "request_id": pa.array(ids, pa.string()),
            target: pa.array(labels.tolist()),
            "received": pa.array(np.full(n, int(now.timestamp() * 1e6), dtype=np.int64), pa.timestamp("us", tz="UTC")),
            "model_name": pa.array([model_name] * n, pa.string()),
            "model_version": pa.array([model_version] * n, pa.string()),
        }
        privacy = self.privacy
        # request_id only: the features are not in this log, and the label is what it keeps
        table = privacy.table(cols, []) if privacy is not None else pa.table(cols)
        name = f"part-{now:%Y%m%dT%H%M%S%f}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
        options = privacy.write_options() if privacy is not None else {}
        if isinstance(self.dir, str):  # an object store: the whole part in one PUT, as predlog does
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink, **options)
            url = urls.join(self.dir, f"date={now:%Y-%m-%d}", name)
            with urls.storage_errors(url, "server.feedback_dir"):
                urls.write_bytes(url, sink.getvalue().to_pybytes())
            self.rows_written += n
            return url
        folder = self.dir / f"date={now:%Y-%m-%d}"
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{name}"  # readers skip dot-files: they never see half a file
        pq.write_table(table, tmp, **options)
        os.replace(tmp, folder / name)
        self.rows_written += n
        return folder / name


def target_of(model: Any) -> str:
    """The training target's name (the label column) of a served model."""
    return str(model.target)
