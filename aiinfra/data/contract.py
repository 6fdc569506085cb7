"""The data contract (``contract.json``): the model's input columns, their types and train
statistics, the target and the task; and the checks that hold incoming rows to it.

``prepare`` writes it (:func:`aiinfra.data.features.infer_contract`); training copies it into the
model directory; serving and batch scoring call :meth:`DataContract.check_frame` on every request.
The same value coercion (:func:`coerce`) is used by the fitted transform, so a value means the
same thing at training and at serving. Import names from :mod:`aiinfra.data.features`.
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aiinfra.data.schema import FeatureType, Task
from aiinfra.errors import DataValidationError, did_you_mean

CONTRACT = "contract.json"
PREPROCESS = "preprocess.json"
#: the version of both files' layout; a reader refuses a newer one
FORMAT_VERSION = 1

#: the strings (lower case) a boolean column may hold, and what they mean
BOOL_STRINGS = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}
_BOOL_LENIENT = BOOL_STRINGS | {"t": True, "f": False, "y": True, "n": False}
#: ISO 8601 dates, with an optional time and zone; ``/`` separators too (2012/01/31), which
#: exports write as often as ``-``
ISO_DATE = re.compile(r"^\d{4}([-/])\d{2}\1\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")

_EXPECTED = {
    FeatureType.numeric: "a number",
    FeatureType.boolean: "a boolean (true/false, yes/no, 1/0)",
    FeatureType.datetime: "an ISO 8601 date (2007-11-11 or 2007-11-11T10:30:00)",
    FeatureType.categorical: "a category (a string)",
    FeatureType.text: "a string",
}


class ContractError(DataValidationError):
    """A row does not fit the contract: one message naming the column, the expected type, the
    value and its row."""

    def __init__(self, column: str, expected: str, got: Any, row: int | None = None, hint: str | None = None):
        self.column, self.expected, self.got, self.row = column, expected, got, row
        where = f" (row {row})" if row is not None else ""
        super().__init__(
            f"column '{column}' expects {expected}, got {got!r}{where}.",
            hint=hint or f"send {expected} in '{column}' (the model's data contract, contract.json)",
        )


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, for JSON."""
    return value.item() if isinstance(value, np.generic) else value


def category_key(value: Any) -> str:
    """The string a categorical value is known by: ``3.0`` and ``3`` are the same category
    (Parquet and JSON clients turn integers into floats)."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


#: what ``infer_dtype(skipna=True)`` calls a column without any str value (nothing can be blank)
_NO_STRINGS = frozenset({"empty", "boolean", "integer", "floating", "mixed-integer-float", "decimal", "complex"})
_NO_STRINGS |= {"datetime", "datetime64", "date", "timedelta", "timedelta64", "time", "period", "interval", "bytes"}
#: Python's whitespace (``str.isspace``) among ASCII characters
_ASCII_BLANK = r"^[ \t\n\r\x0b\x0c\x1c-\x1f]*$"


def _blank_strings(values: np.ndarray) -> np.ndarray | None:
    """Blank (empty or whitespace) values of an object array of str and nulls, vectorised in
    Arrow; None where it cannot say exactly as ``str.strip`` would (non-ASCII text)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        arr = pa.array(values, type=pa.string(), from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError):
        return None
    if pc.all(pc.string_is_ascii(arr)).as_py() is False:
        return None
    blank = pc.fill_null(pc.match_substring_regex(arr, _ASCII_BLANK), False)
    return blank.to_numpy(zero_copy_only=False)


def _nulls(series: pd.Series) -> np.ndarray:
    """Missing values: None, NaN, NaT and blank strings (a CSV's empty field)."""
    isna = series.isna().to_numpy()
    if series.dtype == object or pd.api.types.is_string_dtype(series):
        values = series.to_numpy(dtype=object)
        inferred = pd.api.types.infer_dtype(values, skipna=True)
        if inferred in _NO_STRINGS:
            return isna
        blank = _blank_strings(values) if inferred == "string" and len(values) > SMALL_FRAME else None
        if blank is None:
            blank = series.map(lambda v: isinstance(v, str) and not v.strip()).to_numpy(dtype=bool)
        isna = isna | blank
    return isna


def _fail(column: str, kind: FeatureType, series: pd.Series, bad: np.ndarray) -> None:
    i = int(np.argmax(bad))
    raise ContractError(column, _EXPECTED[kind], _plain(series.iloc[i]), i)


def _parse_dates(values: pd.Series) -> pd.Series:
    """Strings or datetimes -> naive UTC ``datetime64[ns]``; unparsable -> NaT."""
    if pd.api.types.is_datetime64_any_dtype(values):
        out = values
    else:
        text = values.map(lambda v: v.replace("/", "-") if isinstance(v, str) and ISO_DATE.match(v.strip()) else v)
        ok = text.map(
            lambda v: (
                isinstance(v, (datetime.date, np.datetime64))
                or (isinstance(v, str) and bool(ISO_DATE.match(v.strip())))
            )
        )
        text = text.where(ok, None)
        out = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=True)
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_convert("UTC").dt.tz_localize(None)
    return out.astype("datetime64[ns]")


def _to_bool(v: Any) -> float:
    if isinstance(v, (bool, np.bool_)):
        return float(v)
    if isinstance(v, (int, float, np.integer, np.floating)) and v in (0, 1):
        return float(v)
    if isinstance(v, str) and v.strip().lower() in _BOOL_LENIENT:
        return float(_BOOL_LENIENT[v.strip().lower()])
    return np.nan


def coerce(series: pd.Series, kind: FeatureType, column: str, strict: bool = True) -> pd.Series:
    """One column's values as the type says (same index):

    numeric -> float64 (numeric strings parsed); boolean -> float64 1.0/0.0 (true/false, yes/no,
    1/0, any case); datetime -> ``datetime64[ns]`` (ISO 8601 strings, naive UTC); categorical and
    text -> str (``category_key``). Missing values (and blank strings) -> NaN/NaT/None.
    ``strict``: a value that does not parse is a :class:`ContractError` naming it and its row;
    otherwise it becomes missing (the prepared data, where the type was inferred with a
    tolerance: a datetime column may hold up to 5% other strings).
    """
    isna = _nulls(series)
    if kind == FeatureType.numeric:
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            out = series.astype("float64")
        else:
            out = pd.to_numeric(
                series.map(lambda v: v.strip() if isinstance(v, str) else v).where(~isna, None), errors="coerce"
            )
            out = out.astype("float64")
        bad = out.isna().to_numpy() & ~isna
    elif kind == FeatureType.boolean:
        if series.dtype == object and pd.api.types.infer_dtype(series, skipna=True) == "boolean":
            # bools and gaps only (a bool column with nulls): what _to_bool gives each, at once
            floats = np.full(len(series), np.nan)
            floats[~isna] = series.to_numpy(dtype=object)[~isna].astype(np.float64)
            out = pd.Series(floats, index=series.index, dtype="float64")
        else:
            out = pd.Series(
                [np.nan if n else _to_bool(v) for v, n in zip(series.tolist(), isna, strict=True)],
                index=series.index,
                dtype="float64",
            )
        bad = out.isna().to_numpy() & ~isna
    elif kind == FeatureType.datetime:
        out = _parse_dates(series.where(~isna, None) if series.dtype == object else series)
        bad = out.isna().to_numpy() & ~isna
    elif series.dtype == object and pd.api.types.infer_dtype(series, skipna=True) == "string":
        # strings and gaps only: each string is its own category_key, and a scalar
        bad = np.zeros(len(series), dtype=bool)
        out = pd.Series(np.where(isna, None, series.to_numpy(dtype=object)), index=series.index, dtype=object)
    else:
        scalar = series.map(lambda v: not isinstance(v, (list, dict, tuple, set)))
        bad = ~scalar.to_numpy(dtype=bool) & ~isna
        out = pd.Series(
            [None if n else category_key(v) for v, n in zip(series.tolist(), isna, strict=True)],
            index=series.index,
            dtype=object,
        )
    if bad.any():
        if strict:
            _fail(column, kind, series, bad)
        out = out.mask(bad)
    return out


# --- the small-frame path -------------------------------------------------------------------------
# A request is a handful of rows, and the pandas path above costs a fixed ~10 ms per call whatever
# the rows (about 70 Series built). Frames of up to SMALL_FRAME rows are coerced here in plain
# Python/numpy instead, with exactly the same results and errors: a column this path cannot vouch
# for (an extension dtype, a value that is not a plain str/bool/int/float/None, an ISO date form it
# does not parse itself) goes through :func:`coerce`. tests/data/test_small_batch_parity.py holds
# the two paths to the same outputs and messages.

#: the most rows the plain-Python path takes (a dynamic batch is <= 256); bigger frames go through
#: pandas. Measured on a 6-column mixed row: 1 row 0.9 ms vs 11 ms, 1024 rows 21 ms vs 36 ms
SMALL_FRAME = 1024
_PLAIN_TYPES = frozenset({str, bool, int, float, type(None)})
#: the date forms parsed here without pandas; every other ISO_DATE form goes to pd.to_datetime.
#: \Z, not $: pandas is handed the string unstripped, and `$` would let a trailing newline in
_PLAIN_DATE = re.compile(r"(\d{4})([-/])(\d{2})\2(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?\Z")
_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()
_NAT = np.iinfo(np.int64).min


def _plain_values(series: pd.Series) -> list | None:
    """The column as a list of plain Python scalars, or None if it holds anything else."""
    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
        return series.tolist()
    if dtype == np.dtype(object):
        values = series.tolist()
        if all(v.__class__ in _PLAIN_TYPES for v in values):
            return values
    return None


def _is_null(v: Any) -> bool:
    """:func:`_nulls` for one plain value (a blank string only occurs in an object column)."""
    return v is None or (v.__class__ is float and v != v) or (v.__class__ is str and not v.strip())


def _date_ns(text: str) -> int | None:
    """Nanoseconds since the epoch of a plain ISO date/time string, _NAT if it is no ISO date at
    all (pandas would not get it either), None where pandas must decide (other ISO forms, an
    invalid or out-of-range date)."""
    m = _PLAIN_DATE.match(text)
    if m is None:
        return None if ISO_DATE.match(text.strip()) else _NAT
    year, month, day = int(m[1]), int(m[3]), int(m[4])
    hour, minute, second = int(m[5] or 0), int(m[6] or 0), int(m[7] or 0)
    if not 1678 <= year <= 2261:  # datetime64[ns] spans 1677-09-21..2262-04-11: pandas decides
        return None
    try:
        ordinal = datetime.date(year, month, day).toordinal()
        datetime.time(hour, minute, second)
    except ValueError:
        return None
    return ((ordinal - _EPOCH_ORDINAL) * 86400 + hour * 3600 + minute * 60 + second) * 1_000_000_000


def coerce_small(
    series: pd.Series, kind: FeatureType, column: str, strict: bool = True
) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`coerce` without pandas, for small frames: ``(values, missing)`` as numpy arrays
    (float64, datetime64[ns] or object), the same values and the same ContractError; ``missing``
    is the raw column's gaps (:func:`_nulls`). None: this column needs :func:`coerce`."""
    dtype = series.dtype
    numpy_dtype = isinstance(dtype, np.dtype)
    if kind == FeatureType.numeric and numpy_dtype and dtype.kind in "biuf":
        out = series.to_numpy().astype(np.float64)
        return out, (np.isnan(out) if dtype.kind == "f" else np.zeros(len(out), dtype=bool))
    if kind == FeatureType.datetime and numpy_dtype and dtype == np.dtype("datetime64[ns]"):
        out = series.to_numpy().copy()
        return out, np.isnat(out)
    values = _plain_values(series)
    if values is None:
        return None
    return coerce_plain(values, kind, column, strict)


def coerce_plain(
    values: list, kind: FeatureType, column: str, strict: bool = True
) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`coerce_small` of a list of plain Python scalars (str, bool, int, float, None: a
    request's column as parsed), with no Series built; None: this column needs :func:`coerce`.
    Plain Python loops and one array at the end: numpy costs about a microsecond an operation
    whatever the size, and a request has a few rows."""
    nulls = [_is_null(v) for v in values]
    if kind == FeatureType.numeric and all(v.__class__ is float or v.__class__ is int for v in values):
        # a request's numbers (JSON ints and floats, no string, bool or null): no pandas parse
        try:
            return np.array(values, dtype=np.float64), np.array(nulls, dtype=bool)
        except OverflowError:  # an int beyond float64's range: pandas decides
            pass
    isna = np.array(nulls, dtype=bool)
    if kind == FeatureType.numeric:  # an object column: strings, mixed types
        raw = np.empty(len(values), dtype=object)
        raw[:] = [None if n else (v.strip() if v.__class__ is str else v) for v, n in zip(values, nulls, strict=True)]
        out = np.asarray(pd.to_numeric(raw, errors="coerce")).astype(np.float64)
        bad = np.flatnonzero(np.isnan(out) & ~isna).tolist()
    elif kind == FeatureType.boolean:
        flags = [np.nan if n else _to_bool(v) for v, n in zip(values, nulls, strict=True)]
        bad = [i for i, (f, n) in enumerate(zip(flags, nulls, strict=True)) if f != f and not n]
        out = np.array(flags, dtype=np.float64)
    elif kind == FeatureType.datetime:
        ns = []
        for v, n in zip(values, nulls, strict=True):
            if n or v.__class__ is not str:  # a number or a bool is no date (pandas: NaT)
                ns.append(_NAT)
                continue
            stamp = _date_ns(v)
            if stamp is None:
                return None
            ns.append(stamp)
        bad = [i for i, (t, n) in enumerate(zip(ns, nulls, strict=True)) if t == _NAT and not n]
        out = np.array(ns, dtype=np.int64).view("datetime64[ns]")
    else:  # categorical, text: every plain value is a scalar
        out = np.empty(len(values), dtype=object)
        out[:] = [None if n else category_key(v) for v, n in zip(values, nulls, strict=True)]
        return out, isna
    if bad:
        if strict:
            raise ContractError(column, _EXPECTED[kind], values[bad[0]], bad[0])
        out[bad] = np.datetime64("NaT") if kind == FeatureType.datetime else np.nan
    return out, isna


@dataclass
class ColumnSpec:
    """One model input column: its type and what the train split showed."""

    name: str
    type: FeatureType
    nullable: bool  # gaps were seen in the source data (any split): a null is accepted and imputed
    null_share: float  # share of missing values in the train split
    distinct: int  # distinct non-missing values in the train split
    example: str  # a train value, for the type table and error messages
    categories: dict[str, int] | None = None  # category -> train frequency (categorical, boolean)
    min: float | None = None  # numeric; datetime as epoch seconds
    max: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"type": str(self.type)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ColumnSpec:
        return cls(**(d | {"type": FeatureType(d["type"])}))


@dataclass
class DataContract:
    """What the model takes (``columns``, raw, in order) and predicts (``target``, ``task``)."""

    columns: list[ColumnSpec]
    target: str
    task: Task  # resolved: never auto
    classes: list[Any] | None  # sorted class labels (classification), None for regression
    target_type: FeatureType  # numeric, categorical or boolean
    dropped: dict[str, str] = field(default_factory=dict)  # column -> why it is no input

    @property
    def features(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def is_classification(self) -> bool:
        return self.task != Task.regression

    def column(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def check_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Incoming rows (a request, a scoring file) as the contract's columns, in order, each
        coerced to its type (:func:`coerce`, strict). Extra columns are left out. A missing
        column, a value of the wrong type, or a null in a column that never had one ->
        :class:`ContractError` naming the column, the expected type, the value and its row.

        Frames of 1..SMALL_FRAME rows take the plain-Python path (:func:`coerce_small`), bigger
        ones pandas (:meth:`check_frame_pandas`): the same frame and the same errors."""
        if not 0 < len(frame) <= SMALL_FRAME or not frame.columns.is_unique:
            return self.check_frame_pandas(frame)
        present = [str(c) for c in frame.columns]
        out: dict[str, Any] = {}
        for spec in self.columns:
            if spec.name not in frame.columns:
                raise self._no_column(spec, present)
            series = frame[spec.name]
            fast = coerce_small(series, spec.type, spec.name, strict=True)
            if fast is None:
                series = series.reset_index(drop=True)
                values, missing = coerce(series, spec.type, spec.name, strict=True), None
            else:
                values, missing = fast
            if not spec.nullable:
                if missing is None:
                    missing = _nulls(series)
                if missing.any():
                    raise self._never_missing(spec, series, missing)
            out[spec.name] = values
        # copy=False: every array here is fresh (coerce_small/coerce build new ones)
        return pd.DataFrame(out, index=range(len(frame)), copy=False)

    def check_columns(self, columns: dict[str, list], n: int) -> dict[str, np.ndarray]:
        """:meth:`check_frame` of a request's columns as parsed (column -> list of plain
        Python scalars, ``n`` rows each), with no DataFrame built on the way: the same values
        (``{name: frame[name].to_numpy()}`` of check_frame's frame) and the same errors. Building
        the two frames took most of a raw row's serving time (1.5 ms a request here)."""
        if not 0 < n <= SMALL_FRAME:
            frame = pd.DataFrame({k: columns[k] for k in self.features if k in columns}, index=range(n))
            checked = self.check_frame(frame)
            return {c: checked[c].to_numpy() for c in checked.columns}
        out: dict[str, np.ndarray] = {}
        for spec in self.columns:
            if spec.name not in columns:
                raise self._no_column(spec, list(columns))
            values = columns[spec.name]
            fast = None
            if all(v.__class__ in _PLAIN_TYPES for v in values):
                fast = coerce_plain(values, spec.type, spec.name, strict=True)
            if fast is None:  # what check_frame does with this column (a Series, then pandas)
                series = pd.Series(values, index=range(n))
                fast = coerce_small(series, spec.type, spec.name, strict=True)
                if fast is None:
                    fast = coerce(series, spec.type, spec.name, strict=True).to_numpy(), _nulls(series)
            if not spec.nullable and fast[1].any():
                raise self._never_missing(spec, pd.Series(values), fast[1])
            out[spec.name] = fast[0]
        return out

    def _no_column(self, spec: ColumnSpec, present: list[str]) -> ContractError:
        return ContractError(
            spec.name,
            _EXPECTED[spec.type],
            "no such column",
            hint=f"send every input column: {', '.join(self.features)}"
            + (did_you_mean(spec.name, present) if present else ""),
        )

    @staticmethod
    def _never_missing(spec: ColumnSpec, series: pd.Series, missing: np.ndarray) -> ContractError:
        i = int(np.argmax(missing))
        return ContractError(
            spec.name,
            _EXPECTED[spec.type] + " (never missing in the training data)",
            _plain(series.iloc[i]),
            i,
            hint=f"send a value for '{spec.name}' in every row",
        )

    def check_frame_pandas(self, frame: pd.DataFrame) -> pd.DataFrame:
        """:meth:`check_frame` through pandas, column by column (big frames)."""
        present = [str(c) for c in frame.columns]
        out = {}
        for spec in self.columns:
            if spec.name not in frame.columns:
                raise self._no_column(spec, present)
            series = frame[spec.name].reset_index(drop=True)
            values = coerce(series, spec.type, spec.name, strict=True)
            if not spec.nullable:
                missing = _nulls(series)
                if missing.any():
                    raise self._never_missing(spec, series, missing)
            out[spec.name] = values
        return pd.DataFrame(out, index=range(len(frame)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "target": self.target,
            "task": str(self.task),
            "classes": None if self.classes is None else [_plain(c) for c in self.classes],
            "target_type": str(self.target_type),
            "columns": [c.to_dict() for c in self.columns],
            "dropped": dict(self.dropped),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataContract:
        _check_format(d, CONTRACT)
        return cls(
            columns=[ColumnSpec.from_dict(c) for c in d["columns"]],
            target=d["target"],
            task=Task(d["task"]),
            classes=d.get("classes"),
            target_type=FeatureType(d["target_type"]),
            dropped=dict(d.get("dropped", {})),
        )

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / CONTRACT
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> DataContract:
        return cls.from_dict(_read_json(Path(directory) / CONTRACT))


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataValidationError(f"{path} is missing.", hint="run `aiinfra prepare` (and train) again")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataValidationError(f"{path} is not valid JSON: {exc}.", hint="run `aiinfra prepare` again") from None


def _check_format(d: dict[str, Any], name: str) -> None:
    version = d.get("format", 1)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise DataValidationError(
            f"{name} has format {version!r}; this aiinfra reads format <= {FORMAT_VERSION}.",
            hint="upgrade aiinfra, or prepare and train again with this version",
        )


def expected_text(kind: FeatureType) -> str:
    """How an error message names what a column of this type takes."""
    return _EXPECTED[kind]
