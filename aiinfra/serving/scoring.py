"""``aiinfra serve server=batch``: score a Parquet or CSV file into an output file, in process.

Streams the input in ``batch_rows`` record batches (constant memory for any file size), writes the
input's columns plus ``prediction``, ``score`` and one ``proba_<class>`` column per class (a
regression model: ``prediction``, the value, only), and shows a progress bar. The output appears
atomically (written to a temporary name, then renamed).

A model with a data contract (raw rows: strings, booleans, dates, gaps) reads its columns with the
contract's types (a CSV's columns are not guessed block by block), holds every batch to the
contract (a wrong value is one error naming the column, the expected type and the file row) and
encodes it exactly as the server does (:class:`aiinfra.serving.tabular.RawRows`).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from aiinfra.errors import AiinfraError, DataValidationError
from aiinfra.serving.runtime import ModelLoader, predict_batch

log = logging.getLogger("aiinfra.serving")


def _format(path: Path) -> str:
    # the suffix is one of SCORING_FORMATS: BatchServerConfig.check() has refused anything else
    return "csv" if path.suffix.lower() == ".csv" else "parquet"


def _batches(path: Path, fmt: str, batch_rows: int, column_types: dict[str, Any] | None = None):
    """(record batches iterator, total rows or None). ``column_types``: arrow types of CSV columns
    (a raw-row model's contract), so a column is not typed by its first block alone."""
    if fmt == "parquet":
        f = pq.ParquetFile(path)
        return f.iter_batches(batch_size=batch_rows), f.metadata.num_rows
    convert = None
    if column_types:
        # strings_can_be_null: an empty field is a gap, as in the request's CSV body
        convert = pcsv.ConvertOptions(column_types=column_types, strings_can_be_null=True)
    reader = pcsv.open_csv(
        path, read_options=pcsv.ReadOptions(block_size=max(1 << 20, batch_rows * 64)), convert_options=convert
    )
    return iter(reader), None


def _csv_types(inputs: Any) -> dict[str, Any] | None:
    """A raw-row model's CSV column types: numbers as float64, everything else as text for the
    contract to parse (booleans as yes/no/1/0, dates as ISO strings)."""
    contract = getattr(inputs, "contract", None)
    if contract is None:
        return None
    return {c.name: pa.float64() if str(c.type) == "numeric" else pa.string() for c in contract.columns}


def _raw_features(inputs: Any, batch, offset: int) -> Any:
    """A raw-row model's batch: checked against the contract (file rows in the message) and encoded."""
    from aiinfra.data.features import ContractError

    try:
        return inputs.encode_frame(inputs.check_frame(batch.to_pandas()))
    except ContractError as exc:
        where = f" at row {offset + exc.row}" if exc.row is not None else ""
        raise DataValidationError(
            f"column '{exc.column}' expects {exc.expected}, got {exc.got!r}{where} of the input file",
            hint=exc.hint,
        ) from None


def _features(batch, features: list[str], offset: int) -> np.ndarray:
    missing = [f for f in features if f not in batch.schema.names]
    if missing:
        raise DataValidationError(
            f"input is missing the model's feature column(s): {', '.join(missing)}",
            hint=f"the model needs: {', '.join(features)}",
        )
    cols = []
    for f in features:
        col = batch.column(f)
        if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type)):
            raise DataValidationError(f"column '{f}' has type {col.type}; the model needs numbers")
        arr = col.to_numpy(zero_copy_only=False).astype(np.float32)
        bad = ~np.isfinite(arr)
        if bad.any():
            raise DataValidationError(
                f"column '{f}' has a missing or non-finite value at row {offset + int(bad.argmax())}",
                hint="fill or drop missing values before scoring",
            )
        cols.append(arr)
    return np.ascontiguousarray(np.stack(cols, axis=1))


def score_file(cfg: Any) -> dict[str, Any]:
    """Score ``server.input`` into ``server.output`` with the model of ``server.runtime``."""
    s = cfg.server
    src, dst = Path(s.input), Path(s.output)
    in_fmt, out_fmt = _format(src), _format(dst)
    if not src.is_file():
        raise AiinfraError(
            f"server.input '{src}' does not exist",
            hint="run `aiinfra prepare` first, or give server.input=<file.parquet|file.csv>",
        )
    model = ModelLoader(cfg)()
    raw = hasattr(model.inputs, "encode_frame")  # a model with a data contract: raw rows
    batches, total = _batches(src, in_fmt, s.batch_rows, _csv_types(model.inputs) if raw else None)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    writer = None
    rows = 0
    started = time.perf_counter()
    progress = _progress(s.progress, total, src.name)
    try:
        with progress as bar:
            task = bar.add_task("scoring", total=total)
            for batch in batches:
                x = _raw_features(model.inputs, batch, rows) if raw else _features(batch, model.features, rows)
                proba, idx = predict_batch(model, x)
                out = batch
                if idx is None:  # regression: the predicted value
                    out = out.append_column("prediction", pa.array(proba.astype(np.float64), pa.float64()))
                else:
                    labels = model.classes[idx]
                    predicted = pa.array(labels.tolist() if labels.dtype.kind in "OUS" else labels)
                    out = out.append_column("prediction", predicted)
                    out = out.append_column("score", pa.array(proba[np.arange(len(idx)), idx].astype(np.float64)))
                    for k, c in enumerate(model.classes.tolist()):
                        out = out.append_column(f"proba_{c}", pa.array(proba[:, k].astype(np.float64)))
                if writer is None:
                    writer = _writer(tmp, out_fmt, out.schema)
                writer.write_batch(out)
                rows += out.num_rows
                bar.update(task, advance=out.num_rows)
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
    if writer is None:
        raise DataValidationError(f"server.input '{src}' has no rows")
    writer.close()
    os.replace(tmp, dst)
    seconds = time.perf_counter() - started
    log.info(
        "scored %d rows of %s with %s version %s in %.2f s (%.0f rows/s) -> %s",
        rows,
        src,
        model.name,
        model.version,
        seconds,
        rows / max(seconds, 1e-9),
        dst,
    )
    return {
        "exit_code": 0,
        "rows": rows,
        "output": str(dst),
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / max(seconds, 1e-9)),
        "model_name": model.name,
        "model_version": model.version,
    }


def _writer(path: Path, fmt: str, schema):
    if fmt == "csv":
        return pcsv.CSVWriter(str(path), schema)
    return pq.ParquetWriter(str(path), schema)


def _progress(enabled: bool, total: int | None, name: str):
    return Progress(
        TextColumn(f"[bold]{name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        disable=not enabled,
        transient=False,
    )
