"""Validate a source's DataFrame against its declared schema (``source.target``,
``source.columns``): one message per problem, naming the column. Feature types, gaps and the
contract are :mod:`aiinfra.data.features`' job."""

from __future__ import annotations

from typing import Any

import pandas as pd

from aiinfra.data.schema import ColumnType
from aiinfra.errors import DataValidationError, choices_text, did_you_mean


def _whole_numbers(s: pd.Series) -> bool:
    """An integer column, or a float one whose values are whole (pandas reads an int column with
    gaps as float)."""
    if pd.api.types.is_integer_dtype(s):
        return True
    known = s.dropna()
    return pd.api.types.is_float_dtype(s) and bool((known % 1 == 0).all())


def _booleans(s: pd.Series) -> bool:
    """bool values, also with gaps (object dtype) or written as true/false, yes/no, 1/0."""
    if pd.api.types.is_bool_dtype(s):
        return True
    if not (pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)):
        return False
    words = {"true", "false", "yes", "no", "1", "0"}
    return all(isinstance(v, bool) or str(v).strip().lower() in words for v in s.dropna().tolist())


#: whether a column holds the declared type (the schema's ColumnType says which types exist)
_HAS_TYPE = {
    ColumnType.float: lambda s: pd.api.types.is_float_dtype(s) or pd.api.types.is_integer_dtype(s),
    ColumnType.int: _whole_numbers,
    ColumnType.bool: _booleans,
    ColumnType.str: lambda s: pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s),
    ColumnType.category: lambda s: (
        isinstance(s.dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)
    ),
}


def validate_frame(frame: pd.DataFrame, source_cfg: Any) -> list[str]:
    """Check the target and the declared columns and types; return the candidate feature columns
    in order (the declared ones, or every column but the target)."""
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
    # gaps in features are imputed and rows without a target dropped (aiinfra.data.features);
    # strings, booleans and dates are encoded: no NaN or dtype rule here any more
    # (source.allow_nan is kept for old configs and has no effect)
    return features


def _example_bad_value(col: pd.Series, kind: ColumnType) -> str:
    if kind in (ColumnType.float, ColumnType.int):
        bad = pd.to_numeric(col, errors="coerce").isna() & col.notna()
        if bad.any():
            i = int(bad.to_numpy().argmax())
            return f" (row {i}: {col.iloc[i]!r})"
    return ""
