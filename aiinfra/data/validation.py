"""Validate a source's DataFrame against its declared schema: one message per problem, naming
the column."""

from __future__ import annotations

from typing import Any

import pandas as pd

from aiinfra.data.schema import ColumnType
from aiinfra.errors import DataValidationError, choices_text, did_you_mean

#: whether a column holds the declared type (the schema's ColumnType says which types exist)
_HAS_TYPE = {
    ColumnType.float: lambda s: pd.api.types.is_float_dtype(s) or pd.api.types.is_integer_dtype(s),
    ColumnType.int: pd.api.types.is_integer_dtype,
    ColumnType.bool: pd.api.types.is_bool_dtype,
    ColumnType.str: lambda s: pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s),
    ColumnType.category: lambda s: isinstance(s.dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(s),
}


def validate_frame(frame: pd.DataFrame, source_cfg: Any) -> list[str]:
    """Check columns, types and NaNs; return the ordered feature column names."""
    target = source_cfg.target
    columns = source_cfg.columns
    present = [str(c) for c in frame.columns]
    if target not in present:
        raise DataValidationError(
            f"target column '{target}' is missing from the source data." + did_you_mean(target, present),
            hint=f"set source.target to one of: {choices_text(present)}",
        )
    if columns:
        for name, kind in columns.items():
            if name not in present:
                raise DataValidationError(
                    f"column '{name}' declared in source.columns is missing from the data."
                    + did_you_mean(name, present),
                    hint=f"the data has: {choices_text(present)}",
                )
            col = frame[name]
            if not _HAS_TYPE[kind](col):
                raise DataValidationError(
                    f"column '{name}' should be {kind} but is {col.dtype}" + _example_bad_value(col, kind),
                    hint="fix the data, or declare the right type in source.columns",
                )
        features = [c for c in columns if c != target]
    else:
        features = [c for c in present if c != target]
    allowed_nan = set(source_cfg.allow_nan)
    for name in [*features, target]:
        n = int(frame[name].isna().sum())
        if n and name not in allowed_nan:
            raise DataValidationError(
                f"column '{name}' has {n} missing value(s) (NaN), "
                f"first at row {int(frame[name].isna().to_numpy().argmax())}.",
                hint=f"clean the data, or allow them with source.allow_nan=[{name}]",
            )
    for name in features:
        if not (pd.api.types.is_numeric_dtype(frame[name]) or pd.api.types.is_bool_dtype(frame[name])):
            raise DataValidationError(
                f"feature column '{name}' is {frame[name].dtype}, but the models take numbers."
                + _example_bad_value(frame[name], ColumnType.float),
                hint="encode it upstream, or drop it by listing the wanted columns in source.columns",
            )
    return features


def _example_bad_value(col: pd.Series, kind: ColumnType) -> str:
    if kind in (ColumnType.float, ColumnType.int):
        bad = pd.to_numeric(col, errors="coerce").isna() & col.notna()
        if bad.any():
            i = int(bad.to_numpy().argmax())
            return f" (row {i}: {col.iloc[i]!r})"
    return ""
