"""Feature types: which type each column is (inferred from the train rows, or from config), what
the model predicts (the task), and the type table ``prepare`` prints.

The API of the feature work lives here (docs/features.md): the contract and its checks are
:mod:`aiinfra.data.contract`, the fitted preprocessing :mod:`aiinfra.data.transform`; import all
of it from this module.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from aiinfra.data.contract import (
    BOOL_STRINGS,
    CONTRACT,
    ISO_DATE,
    PREPROCESS,
    ColumnSpec,
    ContractError,
    DataContract,
    _nulls,
    coerce,
)
from aiinfra.data.schema import COLUMN_FEATURE_TYPE, FeaturesConfig, FeatureType, Task
from aiinfra.data.transform import ROW_WISE, UNKNOWN, FeatureTransform
from aiinfra.errors import DataValidationError, choices_text, did_you_mean

__all__ = [
    "CONTRACT",
    "PREPROCESS",
    "ROW_WISE",
    "UNKNOWN",
    "ColumnSpec",
    "ContractError",
    "DataContract",
    "FeatureTransform",
    "FeatureType",
    "FeaturesConfig",
    "Task",
    "TaskDecision",
    "drop_missing_target",
    "infer_contract",
    "infer_task",
    "type_table",
]

log = logging.getLogger(__name__)

#: a string column is a date column when this share of its values are ISO 8601 dates
DATE_SHARE = 0.95
#: a string column with at most this share of distinct values is categorical whatever its count
#: (values repeat 20 times on average: the most frequent features.max_categories are kept)
CATEGORY_SHARE = 0.05
#: column names that say "identifier" (an integer column with this name and unique values):
#: ``id``, ``user_id``, ``row-key``, and camel case ``userId``/``rowID`` (case matters there:
#: ``paid`` is no id)
_ID_NAME = re.compile(r"(^|[^a-z])(id|ids|key|uuid|index|idx)$", re.IGNORECASE)
_ID_CAMEL = re.compile(r"[a-z](Id|ID|Key|Index)$")
#: the most categories a contract lists (with their train frequencies)
CONTRACT_CATEGORIES = 1000


@dataclass
class TaskDecision:
    task: Task
    classes: list[Any] | None
    target_type: FeatureType
    rule: str  # how it was decided, as printed by prepare


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _sorted_labels(values: pd.Series) -> list[Any]:
    labels = [_plain(v) for v in values.dropna().unique().tolist()]
    try:
        return sorted(labels)
    except TypeError:  # mixed types: by their text
        return sorted(labels, key=str)


def infer_task(y: pd.Series, cfg: FeaturesConfig) -> TaskDecision:
    """The task from the target's values (or ``features.task``). A target of one class, a
    regression target that is not numeric or has one value: errors naming the target."""
    name = str(y.name)
    y = y.dropna()
    numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
    target_type = (
        FeatureType.numeric
        if numeric
        else FeatureType.boolean
        if pd.api.types.is_bool_dtype(y)
        else FeatureType.categorical
    )
    distinct = int(y.nunique())
    kind = "float" if pd.api.types.is_float_dtype(y) else "integer" if numeric else str(target_type)
    if cfg.task != Task.auto:
        task, rule = Task(cfg.task), f"target '{name}': features.task={cfg.task}"
    elif numeric and pd.api.types.is_float_dtype(y) and not np.all(np.mod(y.to_numpy(), 1) == 0):
        task = Task.regression
        rule = f"target '{name}': {kind} with {distinct} distinct values, not all whole numbers -> regression"
    elif numeric and distinct > cfg.regression_min_distinct:
        task = Task.regression
        rule = (
            f"target '{name}': {kind} with {distinct} distinct values "
            f"(> features.regression_min_distinct={cfg.regression_min_distinct}) -> regression"
        )
    else:
        task = Task.binary if distinct == 2 else Task.multiclass
        rule = f"target '{name}': {kind} with {distinct} distinct values -> {task}"
    if cfg.task == Task.auto:
        rule += " (set features.task to override)"
    if task == Task.regression:
        if not numeric:
            raise DataValidationError(
                f"target '{name}' is {y.dtype} ({_example(y)}), but a regression target must be numeric.",
                hint="features.task=auto (classification), or choose a numeric source.target",
            )
        if distinct < 2:
            raise DataValidationError(
                f"target '{name}' has one value ({_example(y)}) in every row: nothing to predict.",
                hint="check source.target",
            )
        return TaskDecision(task, None, target_type, rule)
    if distinct < 2:
        raise DataValidationError(
            f"target '{name}' has one class ({_example(y)}) in all {len(y)} rows: nothing to tell apart.",
            hint="check source.target, or the filter that made the data",
        )
    if task == Task.binary and distinct != 2:
        raise DataValidationError(
            f"features.task=binary, but target '{name}' has {distinct} classes.",
            hint="features.task=multiclass (or auto)",
        )
    return TaskDecision(task, _sorted_labels(y), target_type, rule)


def _example(s: pd.Series) -> str:
    known = s[~_nulls(s)]
    return repr(_plain(known.iloc[0])) if len(known) else "no values"


def drop_missing_target(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    """Rows without a target teach nothing: dropped (before the split), with a warning counting them."""
    missing = _nulls(frame[target])
    if missing.any():
        log.warning(
            "dropped %d of %d rows without a value in the target '%s' (first at row %d)",
            int(missing.sum()),
            len(frame),
            target,
            int(np.argmax(missing)),
        )
        frame = frame.loc[~missing].reset_index(drop=True)
    return frame


def _integer_identifier(s: pd.Series, name: str, cfg: FeaturesConfig) -> str | None:
    """An integer column of (nearly) unique values that is a sequence (1..n) or is named like an
    id: a row number, not a measurement. Why it is dropped, or None."""
    d, n = int(s.nunique()), len(s)
    if n == 0 or d / n < cfg.identifier_share or d < 2:
        return None
    dense = float(s.max()) - float(s.min()) + 1 <= 2 * d
    if dense or _ID_NAME.search(name) or _ID_CAMEL.search(name):
        return f"identifier: {d} distinct integers in {n} train rows" + (" (a sequence)" if dense else "")
    return None


def _infer(s: pd.Series, name: str, cfg: FeaturesConfig) -> tuple[FeatureType | None, str]:
    """The type of one column from its train values: (type, why), or (None, why it is dropped)."""
    if pd.api.types.is_bool_dtype(s):
        return FeatureType.boolean, "bool values"
    if isinstance(s.dtype, pd.CategoricalDtype):
        return FeatureType.categorical, "a categorical dtype"
    if pd.api.types.is_datetime64_any_dtype(s):
        return FeatureType.datetime, "datetime values"
    known = s[~_nulls(s)]
    if pd.api.types.is_numeric_dtype(s):
        # whole floats too: an integer column with a gap (feedback rows lack the row id) reads as float
        whole = pd.api.types.is_integer_dtype(s) or bool(len(known) and (known % 1 == 0).all())
        if whole and not pd.api.types.is_bool_dtype(s):
            why = _integer_identifier(known, name, cfg)
            if why:
                return None, why
        return FeatureType.numeric, "numbers"
    text = known.map(lambda v: str(v).strip())
    n, d = len(text), int(text.nunique())
    lower = set(text.str.lower().unique())
    if d <= 2 and lower <= BOOL_STRINGS.keys():
        return FeatureType.boolean, f"two values {sorted(lower)}"
    if pd.to_numeric(text, errors="coerce").notna().all():
        return FeatureType.numeric, "numbers written as strings"
    dates = float(text.map(lambda v: bool(ISO_DATE.match(v))).mean())
    if dates >= DATE_SHARE:
        return FeatureType.datetime, f"{dates:.0%} ISO dates"
    wordy = float(text.str.contains(r"\s").mean()) >= 0.5 or float(text.str.len().mean()) >= 30
    share = d / n
    if share >= cfg.identifier_share and d > 1:
        if wordy:
            return FeatureType.text, f"free text: {d} distinct of {n}"
        return None, f"identifier: {d} distinct of {n} train rows"
    if d <= cfg.max_categories or share <= CATEGORY_SHARE:
        return FeatureType.categorical, f"{d} distinct strings"
    if wordy:
        return FeatureType.text, f"words: {d} distinct of {n}"
    return None, f"identifier-like: {d} distinct codes without spaces in {n} train rows"


def _check_names(kind: str, names: list[str], present: list[str]) -> None:
    for name in names:
        if name not in present:
            raise DataValidationError(
                f"features.{kind} names column '{name}', which the data does not have." + did_you_mean(name, present),
                hint=f"the data has: {choices_text(present)}",
            )


def _spec(name: str, kind: FeatureType, train: pd.Series, whole: pd.Series | None) -> ColumnSpec:
    """``whole``: every row's values, None where they are the train rows' (not coerced twice)."""
    values = coerce(train.reset_index(drop=True), kind, name, strict=False)
    known = values.dropna()
    raw = train[~_nulls(train)]
    every = values if whole is None else coerce(whole.reset_index(drop=True), kind, name, strict=False)
    spec = ColumnSpec(
        name=name,
        type=kind,
        nullable=bool(every.isna().any()),
        null_share=round(float(values.isna().mean()) if len(values) else 0.0, 6),
        distinct=int(known.nunique()),
        example=str(_plain(raw.iloc[0])) if len(raw) else "",
    )
    if kind == FeatureType.categorical:
        counts = known.value_counts()
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:CONTRACT_CATEGORIES]
        spec.categories = {str(k): int(v) for k, v in ranked}
    elif kind == FeatureType.boolean:
        spec.categories = {"true": int((known == 1.0).sum()), "false": int((known == 0.0).sum())}
    elif kind == FeatureType.numeric and len(known):
        spec.min, spec.max = float(known.min()), float(known.max())
    elif kind == FeatureType.datetime and len(known):
        seconds = known.astype("int64") / 1e9
        spec.min, spec.max = float(seconds.min()), float(seconds.max())
    return spec


def infer_contract(
    frame: pd.DataFrame, source_cfg: Any, features_cfg: FeaturesConfig, train_rows: pd.Index
) -> DataContract:
    """The contract of ``frame`` (features + target, rows without a target already dropped).

    Types come from ``features.types``, then ``source.columns``, then the values of the TRAIN
    rows (``train_rows``, labels of ``frame``'s index), as are all statistics; whether a column
    may be missing (``nullable``) looks at every row. The task looks at the whole target (every
    class must be known). Identifier columns are dropped with the reason; a column without any
    value in the train rows is an error."""
    target = source_cfg.target
    present = [str(c) for c in frame.columns]
    _check_names("types", list(features_cfg.types), present)
    _check_names("drop", list(features_cfg.drop), present)
    if target in features_cfg.drop:
        raise DataValidationError(
            f"features.drop lists the target '{target}'.", hint="remove it from features.drop, or change source.target"
        )
    decision = infer_task(frame[target], features_cfg)
    hints = dict(getattr(source_cfg, "columns", None) or {})
    train = frame.loc[train_rows]
    # every row is a train row (the streaming prepare's sample): the whole is the train frame
    same = len(train) == len(frame) and train.index.equals(frame.index) and frame.index.is_unique
    columns: list[ColumnSpec] = []
    dropped: dict[str, str] = {}
    for name in present:
        if name == target:
            continue
        if name in features_cfg.drop:
            dropped[name] = "features.drop"
            continue
        if _nulls(train[name]).all():
            where = "any row" if _nulls(frame[name]).all() else f"the {len(train)} train rows"
            raise DataValidationError(
                f"column '{name}' has no values in {where}: there is nothing to learn from it.",
                hint=f"leave it out: features.drop=[{name}]",
            )
        explicit = features_cfg.types.get(name) or COLUMN_FEATURE_TYPE.get(str(hints.get(name, "")))
        if explicit is not None:
            kind = FeatureType(explicit)
            coerce(frame[name].reset_index(drop=True), kind, name, strict=True)  # a wrong override: one error
        else:
            kind, why = _infer(train[name], name, features_cfg)
            if kind is None:
                dropped[name] = why
                continue
        columns.append(_spec(name, kind, train[name], None if same else frame[name]))
    if not columns:
        raise DataValidationError(
            f"no input columns are left (dropped: {'; '.join(f'{k}: {v}' for k, v in dropped.items()) or 'none'}).",
            hint="set a column's type with features.types={col: numeric}, or shorten features.drop",
        )
    return DataContract(columns, target, decision.task, decision.classes, decision.target_type, dropped)


def _decision(spec: ColumnSpec, transform: FeatureTransform | None) -> str:
    enc = next((c for c in transform.columns if c.name == spec.name), None) if transform else None
    if spec.type == FeatureType.categorical:
        kept = len(enc.categories or []) if enc else len(spec.categories or {})
        text = f"one-hot: {kept} categor{'y' if kept == 1 else 'ies'} + {UNKNOWN}"
    elif spec.type == FeatureType.text:
        text = f"{enc.buckets if enc else '?'} hashed token buckets"
    elif spec.type == FeatureType.datetime:
        text = "year, month, weekday, day of year, days"
    elif spec.type == FeatureType.boolean:
        text = "0/1"
    else:
        text = "as is"
    if enc is not None and spec.null_share > 0 and enc.impute is not None:
        shown = (
            pd.Timestamp(enc.impute, unit="s").date().isoformat()
            if spec.type == FeatureType.datetime
            else f"{enc.impute:g}"
        )
        text += f", gaps -> {shown}"
    if enc is not None and enc.indicator:
        text += f" + {spec.name}__missing"
    return text


def _first(s: pd.Series) -> str:
    known = s[~_nulls(s)]
    return str(_plain(known.iloc[0])) if len(known) else ""


def _short(value: Any, width: int = 24) -> str:
    text = str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def type_table(contract: DataContract, frame: pd.DataFrame, transform: FeatureTransform | None = None) -> str:
    """The table ``prepare`` prints: every column of ``frame``, its type, missing share (train
    for inputs), distinct values, an example and what happens to it."""
    rows = [("column", "type", "missing", "distinct", "example", "decision")]
    for spec in contract.columns:
        rows.append(
            (
                spec.name,
                str(spec.type),
                f"{spec.null_share:.1%}",
                str(spec.distinct),
                _short(spec.example),
                _decision(spec, transform),
            )
        )
    for name, why in contract.dropped.items():
        s = frame[name] if name in frame.columns else pd.Series([], dtype=object)
        rows.append(
            (
                name,
                "-",
                f"{_nulls(s).mean():.1%}" if len(s) else "-",
                str(s.nunique()),
                _short(_first(s)),
                f"dropped: {why}",
            )
        )
    y = frame[contract.target] if contract.target in frame.columns else pd.Series([], dtype=object)
    what = f"{len(contract.classes or [])} classes" if contract.classes is not None else "values"
    rows.append(
        (
            contract.target,
            f"target ({contract.target_type})",
            f"{_nulls(y).mean():.1%}" if len(y) else "-",
            str(y.nunique()),
            _short(_first(y)),
            f"{contract.task}: {what}",
        )
    )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)
