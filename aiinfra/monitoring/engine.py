"""The drift verdict: every row of the current window against the reference, column by column.

Each column is read on its own (Parquet is columnar), summarised (sorted finite values, or value
counts) and tested with :mod:`aiinfra.monitoring.stats`, on a small thread pool: pyarrow reads,
numpy sorts and searches release the GIL, so two cores work on two columns at once. Memory is
bounded by (threads x one column of the window), not by the whole table. While a column is in
memory its rows for the report sample are taken too, so the window is read once.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aiinfra.errors import AiinfraError, ConfigError, DataValidationError, choices_text, did_you_mean
from aiinfra.monitoring import stats, typed_columns
from aiinfra.monitoring.schema import DatetimeCompare, DriftMonitorConfig, Method, TextCompare
from aiinfra.monitoring.typed_columns import as_labels  # noqa: F401 - re-exported (report, feedback)
from aiinfra.monitoring.verdict import ColumnDrift
from aiinfra.monitoring.windows import PREDICTION, CurrentData

log = logging.getLogger("aiinfra.monitor")


@dataclass
class Reference:
    table: Any  # pyarrow.Table
    meta: dict
    path: Path
    contract: typed_columns.ContractView | None = None  # None: data prepared before contracts

    @property
    def task(self) -> str:
        """binary | multiclass | regression: the contract's, else meta.json's, else from the classes."""
        if self.contract is not None:
            return self.contract.task
        if self.meta.get("task"):
            return str(self.meta["task"])
        return "binary" if len(self.meta.get("classes") or []) <= 2 else "multiclass"


@dataclass
class ColumnPlan:
    name: str  # column in the current data
    ref_name: str  # column in the reference (the target for the prediction column)
    kind: str  # stats.NUMERICAL | stats.CATEGORICAL
    method: str | None  # None: Evidently's automatic choice
    threshold: float | None  # None: the method's default
    counted: bool = True  # counts towards the dataset drift share (features do; prediction not)
    role: str = "feature"  # feature | prediction | target | skipped
    # with a data contract: typed_columns.VALUES/CATEGORIES/LABELS/EPOCH/LENGTH; None: as read (old data)
    compared_as: str | None = None
    feature_type: str | None = None  # the contract's type of the column
    categories: frozenset[str] | None = None  # the contract's categories (unseen share)
    null_share_train: float | None = None
    boolean: bool = False
    skip: str | None = None  # why the column is not compared (its missing share is still reported)
    typed: bool = False  # the reference has a data contract: the verdict entry gets its typed keys


def load_reference(prepared: str | Path) -> Reference:
    """The training reference (``reference.parquet``) and ``meta.json`` of the prepared data, on a
    local path or an object store (``paths.prepared`` as a URL)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from aiinfra.storage import urls

    ref_path, meta_path = urls.join(prepared, "reference.parquet"), urls.join(prepared, "meta.json")
    with urls.storage_errors(str(prepared)):
        for p in (ref_path, meta_path):
            if not urls.isfile(p):
                raise AiinfraError(
                    f"reference data not found: {urls.redact(p)}",
                    hint="run `aiinfra prepare` first (it writes reference.parquet and meta.json), "
                    "or point paths.prepared at a directory holding them",
                )
        try:
            meta = json.loads(urls.read_text(meta_path))
        except (OSError, ValueError) as exc:
            raise AiinfraError(
                f"cannot read {urls.redact(meta_path)}: {exc}", hint="re-run `aiinfra prepare`"
            ) from None
        if not isinstance(meta, dict) or not isinstance(meta.get("features"), list):
            raise DataValidationError(
                f"{urls.redact(meta_path)} has no 'features' list", hint="re-run `aiinfra prepare` to rewrite it"
            )
        try:
            fs, inner = urls.arrow_filesystem(ref_path)
            table = pq.read_table(inner, filesystem=fs)
        except (pa.ArrowInvalid, OSError) as exc:
            raise AiinfraError(
                f"cannot read reference data {urls.redact(ref_path)}: {exc}", hint="re-run `aiinfra prepare`"
            ) from None
    return Reference(table, meta, ref_path, typed_columns.load(prepared))


def _kind(arrow_type: Any, name: str, categorical: set[str]) -> str:
    import pyarrow.types as t

    if name in categorical:
        return stats.CATEGORICAL
    if t.is_integer(arrow_type) or t.is_floating(arrow_type) or t.is_decimal(arrow_type):
        return stats.NUMERICAL
    return stats.CATEGORICAL


def _check_method(name: str, method: str, kind: str, where: str) -> None:
    """A method that does not fit the column's type (known only once the data is read)."""
    if kind not in stats.ALLOWED[method]:
        valid = [m for m, kinds in stats.ALLOWED.items() if kind in kinds]
        what = "numerical" if kind == stats.NUMERICAL else "categorical"
        raise ConfigError(
            f"{where}: method '{method}' does not apply to {what} column '{name}'.",
            hint=f"methods for {what} columns: auto, {choices_text(valid)}"
            + ("; or list the column in monitor.categorical" if kind == stats.NUMERICAL else ""),
        )


def _method(method: Method | None) -> str | None:
    """A configured method as the engine uses it: None for ``auto`` (Evidently's choice per column)."""
    return None if method is None or method == Method.auto else str(method)


def plan_columns(mon: DriftMonitorConfig, ref: Reference, current: CurrentData) -> list[ColumnPlan]:
    """Which columns to test, how, and that they exist on both sides (one clear error if not)."""
    features = list(mon.columns or ref.meta["features"])
    target = ref.meta.get("target")
    categorical = set(mon.categorical)
    per_method = mon.per_column_method
    per_threshold = mon.per_column_threshold
    for key, mapping in (("per_column_method", per_method), ("per_column_threshold", per_threshold)):
        for col in mapping:
            if col not in features and col != PREDICTION:
                raise ConfigError(
                    f"monitor.{key} names column '{col}', which is not monitored." + did_you_mean(col, features),
                    hint=f"monitored columns: {choices_text(features)}",
                )
    missing_ref = [c for c in features if c not in ref.table.column_names]
    if missing_ref:
        raise DataValidationError(
            f"reference {ref.path} lacks column(s) {', '.join(missing_ref)}",
            hint="re-run `aiinfra prepare`, or set monitor.columns to columns it has",
        )
    missing_cur = [c for c in features if c not in current.names]
    if missing_cur:
        raise DataValidationError(
            f"current data ({current.description}) lacks column(s) {', '.join(missing_cur)}"
            + did_you_mean(missing_cur[0], current.names),
            hint=f"it has: {choices_text(current.names)}. Give it every feature in meta.json, "
            "or monitor only some with monitor.columns=[...]",
        )

    contract = ref.contract
    plans = []
    for name in features:
        spec = contract.columns.get(name) if contract is not None else None
        typed = _typed_plan(mon, name, spec, categorical) if spec is not None else {}
        typed_kind = typed.pop("kind", None)
        if typed.get("skip"):
            log.info("column '%s' is not compared: %s", name, typed["skip"])
            plans.append(ColumnPlan(name, name, typed_kind, None, None, counted=False, role="skipped", **typed))
            continue
        kind = typed_kind or _kind(ref.table.schema.field(name).type, name, categorical)
        cur_kind = _kind(current.type_of(name), name, categorical)
        if typed.get("compared_as") in (None, typed_columns.VALUES) and kind == stats.NUMERICAL:
            import pyarrow.types as t

            if cur_kind != stats.NUMERICAL and not t.is_boolean(current.type_of(name)):
                raise DataValidationError(
                    f"column '{name}' is numerical in the reference but {current.type_of(name)} in "
                    f"the current data ({current.description})",
                    hint="fix the column's type in the current data, or list it in monitor.categorical",
                )
        method = _method(per_method.get(name, mon.method))
        if method:
            _check_method(name, method, kind, "monitor.per_column_method" if name in per_method else "monitor.method")
        threshold = per_threshold.get(name, mon.threshold)  # a column's own threshold, else the default
        plans.append(ColumnPlan(name, name, kind, method, threshold, **typed))
    regression = ref.task == "regression"
    # a regression model logs its value: compared with the reference target as numbers
    out_kind = stats.NUMERICAL if regression else stats.CATEGORICAL
    out_as = typed_columns.VALUES if regression else typed_columns.LABELS
    if mon.prediction_drift and PREDICTION in current.names and target in ref.table.column_names:
        method = _method(per_method.get(PREDICTION))
        if method:
            _check_method(PREDICTION, method, out_kind, "monitor.per_column_method")
        plans.append(
            ColumnPlan(
                PREDICTION,
                target,
                out_kind,
                method,
                per_threshold.get(PREDICTION),
                counted=False,
                role="prediction",
                compared_as=out_as,
                typed=contract is not None,
            )
        )
    if target and target in current.names and target not in features:
        # a labelled file (or feedback joined to the log): target drift, reported apart
        plans.append(
            ColumnPlan(
                target,
                target,
                out_kind,
                None,
                None,
                counted=False,
                role="target",
                # with a contract: labels as strings, as the prediction; without: as read (as before)
                compared_as=typed_columns.VALUES if regression else typed_columns.LABELS if contract else None,
                typed=contract is not None,
            )
        )
    return plans


def _typed_plan(mon: DriftMonitorConfig, name: str, spec: typed_columns.ColumnView, categorical: set[str]) -> dict:
    """How a contract column is compared (ColumnPlan fields), from its type and monitor.datetime/text."""
    compared_as = typed_columns.CATEGORIES if name in categorical else typed_columns.BY_TYPE.get(spec.type)
    if compared_as is None:  # a type this monitor does not know (a newer contract): compare as read
        return {"typed": True, "feature_type": spec.type, "null_share_train": spec.null_share}
    skip = None
    if spec.type == "datetime" and mon.datetime == DatetimeCompare.skip:
        skip = "datetime column, monitor.datetime=skip"
    elif spec.type == "text" and mon.text == TextCompare.skip:
        skip = "text column, monitor.text=skip"
    return {
        "typed": True,
        "kind": typed_columns.KIND[compared_as],
        "compared_as": compared_as,
        "feature_type": spec.type,
        "categories": spec.categories if compared_as == typed_columns.CATEGORIES else None,
        "null_share_train": spec.null_share,
        "boolean": spec.type == "boolean",
        "skip": skip,
    }


def summarize(column: Any, kind: str) -> stats.Summary:
    """A pyarrow (Chunked)Array -> the summary the tests need."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = len(column)
    if kind == stats.NUMERICAL:
        values = column if pa.types.is_float64(column.type) else pc.cast(column, pa.float64())
        if values.null_count:
            values = values.fill_null(np.nan)
        return stats.numeric_summary(values.to_numpy(), rows)
    vc = pc.value_counts(column.drop_null() if hasattr(column, "drop_null") else column)
    counts = dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True))
    return stats.categorical_summary(counts, rows)


def judge_column(plan: ColumnPlan, ref: stats.Summary, cur: stats.Summary) -> ColumnDrift:
    """One column's entry of the verdict: method (resolved), score, threshold, drifted."""
    result: dict[str, Any] = {
        "column": plan.name,
        "reference_column": plan.ref_name,
        "type": "numerical" if plan.kind == stats.NUMERICAL else "categorical",
        "rows_reference": ref.rows,
        "rows_current": cur.rows,
        "missing_share_reference": ref.missing / ref.rows if ref.rows else 0.0,
        "missing_share_current": cur.missing / cur.rows if cur.rows else 0.0,
        "counted": plan.counted,
    }
    if plan.typed:  # the reference has a data contract
        result.update(_typed_extras(plan, ref, cur))
    if ref.n == 0 or cur.n == 0:
        # Evidently raises on an empty column; a feature that stopped arriving is drift
        side = "reference" if ref.n == 0 else "current"
        result.update(
            method=plan.method or "auto",
            score=None,
            threshold=plan.threshold,
            drifted=side == "current",
            note=f"no non-missing values in the {side} data",
        )
        return ColumnDrift(**result)
    method = plan.method or stats.auto_method(ref, cur)
    threshold = plan.threshold if plan.threshold is not None else stats.METHODS[method][0]
    score = stats.TESTS[method](ref, cur)
    result.update(
        method=method,
        method_auto=plan.method is None,
        score=score,
        threshold=threshold,
        drifted=bool(stats.is_drift(method, score, threshold)),
    )
    return ColumnDrift(**result)


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _typed_extras(plan: ColumnPlan, ref: stats.Summary, cur: stats.Summary) -> dict:
    """The contract's view of a column: its type, what was compared, and (categorical/boolean)
    the share of rows whose category the contract does not know, on each side."""
    extras: dict[str, Any] = {"role": plan.role, "compared_as": plan.compared_as or "as read"}
    if plan.feature_type is not None:
        extras["feature_type"] = plan.feature_type
        extras["null_share_train"] = plan.null_share_train
    if plan.categories is not None:
        known = plan.categories
        unseen_ref = sum(n for k, n in ref.counts.items() if k not in known)
        unseen_cur = {k: n for k, n in cur.counts.items() if k not in known}
        extras["unseen_share_reference"] = _share(unseen_ref, ref.rows)
        extras["unseen_share_current"] = _share(sum(unseen_cur.values()), cur.rows)
        top = sorted(unseen_cur.items(), key=lambda kv: (-kv[1], str(kv[0])))[:5]
        extras["unseen_values"] = {str(k): int(n) for k, n in top}
    return extras


def skipped_column(plan: ColumnPlan, ref_col: Any, cur_col: Any) -> ColumnDrift:
    """A column that is not compared (monitor.datetime/text=skip): why, and its missing shares
    (counted as the contract counts them: a blank text or an unparseable date is missing too)."""
    how = typed_columns.BY_TYPE.get(plan.feature_type or "")
    if how is not None:
        ref_col, cur_col = typed_columns.convert(ref_col, how), typed_columns.convert(cur_col, how)
    return ColumnDrift(
        column=plan.name,
        reference_column=plan.ref_name,
        type="numerical" if plan.kind == stats.NUMERICAL else "categorical",
        rows_reference=len(ref_col),
        rows_current=len(cur_col),
        missing_share_reference=_share(ref_col.null_count, len(ref_col)),
        missing_share_current=_share(cur_col.null_count, len(cur_col)),
        counted=False,
        method="skipped",
        score=None,
        threshold=None,
        drifted=False,
        note=plan.skip or "skipped",
        role="skipped",
        feature_type=plan.feature_type or "",
        compared_as="skipped",
        null_share_train=plan.null_share_train,
    )


@dataclass
class EngineResult:
    columns: list[ColumnDrift]
    rows_current: int
    rows_reference: int
    sample_current: Any  # pyarrow.Table: the report's rows of the current window
    models: dict


def run(
    mon: DriftMonitorConfig, ref: Reference, current: CurrentData, plans: list[ColumnPlan], seed: int = 0
) -> EngineResult:
    import pyarrow as pa

    rows = current.count_rows()
    if rows == 0:
        raise AiinfraError(
            f"no rows in the current data ({current.description})",
            hint="widen the window (monitor.window.last_hours / start / end / last_rows), "
            "or check that the server logs",
        )
    n_sample = rows if mon.report_sample_rows == 0 else min(rows, mon.report_sample_rows)
    # one fixed set of row positions, taken from every column as it passes through memory
    take = (
        None
        if n_sample == rows
        else pa.array(np.sort(np.random.default_rng(seed).choice(rows, n_sample, replace=False)))
    )

    sample: dict[str, Any] = {}

    def one(plan: ColumnPlan) -> dict:
        try:
            col = current.column(plan.name)
        except (pa.ArrowException, OSError) as exc:
            raise AiinfraError(
                f"cannot read column '{plan.name}' of the current data ({current.description}): {exc}",
                hint="check the file (or the log part files) for damage; a partly written file can be moved away",
            ) from None
        if len(col) != rows:  # the log grew between count and read: keep the count consistent
            col = col.slice(0, rows)
        sample[plan.name] = col if take is None else col.take(take)
        ref_col = ref.table.column(plan.ref_name)
        if plan.skip:
            return skipped_column(plan, ref_col, col)
        if plan.compared_as is not None:  # typed by the contract (or prediction/target as labels/values)
            ref_col = typed_columns.convert(ref_col, plan.compared_as, plan.boolean)
            col = typed_columns.convert(col, plan.compared_as, plan.boolean)
        elif plan.name != plan.ref_name:  # logged prediction vs reference target: as class labels
            ref_col, col = as_labels(ref_col), as_labels(col)
        ref_s = summarize(ref_col, plan.kind)
        cur_s = summarize(col, plan.kind)
        del col
        return judge_column(plan, ref_s, cur_s)

    threads = mon.threads or os.cpu_count() or 1  # 0: one per core
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(plans)))) as pool:
        results = list(pool.map(one, plans))

    models = {}
    for key in ("model_name", "model_version"):
        if key in current.names:
            models[key] = sorted(str(v) for v in current.column(key).unique().to_pylist() if v is not None)[:20]
    sample_table = pa.table({p.name: sample[p.name] for p in plans}) if plans else pa.table({})
    return EngineResult(results, rows, ref.table.num_rows, sample_table, models)
