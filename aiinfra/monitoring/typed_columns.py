"""Raw typed columns for the drift tests: what each contract type is compared as, and the conversions.

The data contract (``<paths.prepared>/contract.json``, :mod:`aiinfra.data.features`) types every
model input column. The monitor compares the *raw* columns the server logs, so each type maps to
one of the two kinds :mod:`aiinfra.monitoring.stats` tests:

=============  ==============  ==========================================================
contract type  compared as     how
=============  ==============  ==========================================================
numeric        ``values``      as today (numeric methods)
categorical    ``categories``  value counts of canonical strings (categorical methods)
boolean        ``categories``  ``"true"`` / ``"false"`` (categorical methods)
datetime       ``epoch``       seconds since 1970 (numeric methods), or skipped
text           ``length``      length in characters (numeric methods), or skipped
=============  ==============  ==========================================================

Categories are compared as canonical strings on both sides and against the contract's categories
(the unseen share): ``True`` and ``"true"`` are one value, and so are ``1``, ``1.0`` and ``"1"``
(a CSV read by pandas, a JSON request and a Parquet log spell the same category differently).
Imports numpy/pyarrow only, inside the functions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiinfra.errors import AiinfraError
from aiinfra.monitoring import stats

CONTRACT_FILE = "contract.json"  # aiinfra.data.features.CONTRACT, named here so old data needs no import

#: compared_as values
VALUES, CATEGORIES, LABELS, EPOCH, LENGTH = "values", "categories", "labels", "epoch", "length"
#: the stats kind of each way of comparing
KIND = {VALUES: stats.NUMERICAL, CATEGORIES: stats.CATEGORICAL, LABELS: stats.CATEGORICAL,
        EPOCH: stats.NUMERICAL, LENGTH: stats.NUMERICAL}  # fmt: skip
#: contract type -> how it is compared (datetime/text may be skipped by monitor.datetime/text)
BY_TYPE = {"numeric": VALUES, "categorical": CATEGORIES, "boolean": CATEGORIES, "datetime": EPOCH, "text": LENGTH}

_INTEGRAL_TEXT = re.compile(r"^-?\d+\.0+$")
# the strings a boolean column may hold (aiinfra.data.contract's lenient set)
_BOOLEAN = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}
_BOOLEAN |= {"t": True, "f": False, "y": True, "n": False}


@dataclass
class ColumnView:
    """What the monitor needs of one contract column."""

    name: str
    type: str  # FeatureType value
    categories: frozenset[str] | None  # canonical strings (categorical/boolean)
    null_share: float | None  # the train split's missing share


@dataclass
class ContractView:
    path: str
    task: str  # binary | multiclass | regression
    target: str
    features: list[str]
    columns: dict[str, ColumnView]

    @property
    def is_regression(self) -> bool:
        return self.task == "regression"


def canonical(value: Any, boolean: bool = False) -> str | None:
    """One category as the monitor compares it, as the contract keys it
    (:func:`aiinfra.data.contract.category_key`); None for a missing value (None, NaN, a blank
    string: the contract's missing values)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if boolean:  # the contract's boolean spellings (yes/no, 1/0, t/f, any case)
        if isinstance(value, (int, float)) and value in (0, 1):
            return "true" if value else "false"
        if isinstance(value, str) and value.strip().lower() in _BOOLEAN:
            return "true" if _BOOLEAN[value.strip().lower()] else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value)
    if isinstance(value, str) and not text.strip():
        return None
    if _INTEGRAL_TEXT.match(text):
        return text.split(".", 1)[0]
    return text


def load(prepared: str | Path) -> ContractView | None:
    """The contract of the prepared data, or None when there is none (data prepared before it:
    every column is then compared as the monitor always did)."""
    import json

    from aiinfra.storage import urls

    path = urls.join(prepared, CONTRACT_FILE)  # paths.prepared may be an object-store URL
    with urls.storage_errors(path):
        if not urls.isfile(path):
            return None
        text = urls.read_text(path)
    from aiinfra.data.features import DataContract

    try:
        contract = DataContract.from_dict(json.loads(text))
    except AiinfraError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AiinfraError(
            f"cannot read the data contract {urls.redact(path)}: {type(exc).__name__}: {exc}",
            hint="re-run `aiinfra prepare` to write it again",
        ) from None
    return view(contract, str(path))


def view(contract: Any, path: str = CONTRACT_FILE) -> ContractView:
    """A :class:`~aiinfra.data.features.DataContract` as the monitor reads it."""
    columns = {}
    for spec in contract.columns:
        ctype = str(getattr(spec.type, "value", spec.type))
        cats = getattr(spec, "categories", None)
        known = None
        if cats is not None and ctype in ("categorical", "boolean"):
            known = frozenset(c for c in (canonical(k, ctype == "boolean") for k in cats) if c is not None)
        columns[spec.name] = ColumnView(spec.name, ctype, known, getattr(spec, "null_share", None))
    task = str(getattr(contract.task, "value", contract.task))
    return ContractView(path, task, contract.target, list(contract.features), columns)


def convert(column: Any, compared_as: str | None, boolean: bool = False) -> Any:
    """A pyarrow (Chunked)Array as the test compares it (``None``: unchanged)."""
    if compared_as is None or compared_as == VALUES:
        return _numbers(column) if compared_as == VALUES else column
    if compared_as == LABELS:
        return as_labels(column)
    if compared_as == CATEGORIES:
        return categories(column, boolean)
    if compared_as == EPOCH:
        return epoch_seconds(column)
    if compared_as == LENGTH:
        return text_length(column)
    raise ValueError(f"unknown comparison {compared_as!r}")


def as_labels(column: Any) -> Any:
    """Class labels as strings, so that a logged prediction ``"1"`` matches a reference target
    ``1`` (or ``1.0``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_floating(column.type):
        values = column.drop_null() if hasattr(column, "drop_null") else column
        if len(values) and pc.all(pc.equal(values, pc.round(values))).as_py():
            column = pc.cast(column, pa.int64())
    return pc.cast(column, pa.string())


def _numbers(column: Any) -> Any:
    """Numeric columns as they are; a numeric column that arrived as strings or booleans as floats
    (an unparseable string is a missing value, counted in the missing share)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = column.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return column
    if pa.types.is_boolean(t) or pa.types.is_null(t):
        return pc.cast(column, pa.float64())
    import pandas as pd

    values = pd.to_numeric(pd.Series(column.to_pylist(), dtype=object), errors="coerce")
    return pa.array(values.to_numpy(dtype="float64"), pa.float64(), from_pandas=True)


def categories(column: Any, boolean: bool = False) -> Any:
    """Canonical category strings (:func:`canonical`), computed once per distinct value."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    encoded = pc.dictionary_encode(column)
    mapped = pa.array([canonical(v, boolean) for v in encoded.dictionary.to_pylist()], pa.string())
    return pc.take(mapped, encoded.indices)


def epoch_seconds(column: Any) -> Any:
    """Seconds since 1970 (UTC; naive times are taken as UTC) of timestamps, dates or ISO strings;
    a string that does not parse is a missing value."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = column.type
    if pa.types.is_timestamp(t):
        per_second = {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[t.unit]
        return pc.divide(pc.cast(pc.cast(column, pa.timestamp(t.unit)), pa.int64()).cast(pa.float64()), per_second)
    if pa.types.is_date(t):
        days = pc.cast(pc.cast(column, pa.date32()), pa.int32()).cast(pa.float64())
        return pc.multiply(days, 86400.0)
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return pc.cast(column, pa.float64())  # already epoch numbers
    import pandas as pd

    parsed = pd.to_datetime(pd.Series(column.to_pylist(), dtype=object), errors="coerce", utc=True, format="mixed")
    seconds = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds()  # NaT -> NaN: missing
    return pa.array(seconds.to_numpy(dtype="float64"), pa.float64(), from_pandas=True)


def text_length(column: Any) -> Any:
    """Length in characters (a missing text stays missing)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        column = pc.cast(column, pa.string())
    lengths = pc.cast(pc.utf8_length(column), pa.float64())
    blank = pc.equal(pc.utf8_trim_whitespace(column), "")  # a blank text is missing (the contract's rule)
    return pc.if_else(blank, pa.scalar(None, pa.float64()), lengths)
