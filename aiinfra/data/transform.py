"""The fitted preprocessing (``preprocess.json``): raw columns -> the float32 matrix the network
takes, with every statistic (imputation values, vocabularies) fitted on the train split only.

Plain JSON, no pickle. Numeric scaling is not here: the model's own Standardize layer fits mean
and std on the encoded train matrix. Import names from :mod:`aiinfra.data.features`.
"""

from __future__ import annotations

import datetime
import json
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aiinfra.data.contract import (
    FORMAT_VERSION,
    PREPROCESS,
    SMALL_FRAME,
    ContractError,
    DataContract,
    _check_format,
    _read_json,
    category_key,
    coerce,
    coerce_small,
    expected_text,
)
from aiinfra.data.schema import FeaturesConfig, FeatureType, Impute, Task, text_buckets_for
from aiinfra.errors import DataValidationError

#: the category every value outside a column's vocabulary (and every gap) is encoded as
UNKNOWN = "__unknown__"
DATE_PARTS = ("year", "month", "dayofweek", "dayofyear", "epoch_days")
_TOKEN = re.compile(r"[0-9a-z]+")
_DAY_S = 86400.0
_DAY_NS = 86_400_000_000_000
_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()
#: up to this many rows :meth:`FeatureTransform._encode_small` encodes row by row in Python
ROW_WISE = 16


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def bucket(token: str, buckets: int) -> int:
    """A token's bucket: crc32, the same in every process (Python's hash() is salted)."""
    return zlib.crc32(token.encode()) % buckets


@dataclass
class ColumnEncoding:
    """How one raw column becomes encoded columns."""

    name: str
    type: FeatureType
    impute: float | None = None  # numeric, boolean (0/1), datetime (epoch seconds)
    indicator: bool = False  # a `<name>__missing` column follows
    categories: list[str] | None = None  # categorical: the kept train categories
    buckets: int | None = None  # text

    def output_names(self) -> list[str]:
        n = self.name
        if self.type == FeatureType.categorical:
            names = [f"{n}={c}" for c in self.categories or []] + [f"{n}={UNKNOWN}"]
        elif self.type == FeatureType.datetime:
            names = [f"{n}__{p}" for p in DATE_PARTS]
        elif self.type == FeatureType.text:
            names = [f"{n}__h{i}" for i in range(self.buckets or 0)]
        else:
            names = [n]
        return names + ([f"{n}__missing"] if self.indicator else [])

    def vocabulary(self) -> dict[str, int]:
        """category -> one-hot position, built once per ``categories`` list and cached here
        (``fit`` assigns the list after construction, hence the identity check)."""
        cats = self.categories
        cached = self.__dict__.get("_vocab")
        if cached is None or cached[0] is not cats or cached[1] != len(cats or ()):
            cached = (cats, len(cats or ()), {c: i for i, c in enumerate(cats or [])})
            self.__dict__["_vocab"] = cached
        return cached[2]

    def width(self) -> int:
        """How many encoded columns this one becomes (what :meth:`FeatureTransform.transform` writes)."""
        if self.type == FeatureType.categorical:
            base = len(self.vocabulary()) + 1
        elif self.type == FeatureType.datetime:
            base = len(DATE_PARTS)
        elif self.type == FeatureType.text:
            base = self.buckets or 0
        else:
            base = 1
        return base + (1 if self.indicator else 0)

    def fill_stamp(self) -> np.datetime64:
        """A datetime column's gap value as datetime64[ns], computed by pandas once and cached."""
        cached = self.__dict__.get("_fill_stamp")
        if cached is None or cached[0] != self.impute:
            cached = (self.impute, np.datetime64(pd.Timestamp(self.impute or 0.0, unit="s").value, "ns"))
            self.__dict__["_fill_stamp"] = cached
        return cached[1]

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "type": str(self.type), "impute": self.impute, "indicator": self.indicator}
        if self.categories is not None:
            d["categories"] = list(self.categories)
        if self.buckets is not None:
            d["buckets"] = self.buckets
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ColumnEncoding:
        return cls(
            name=d["name"],
            type=FeatureType(d["type"]),
            impute=d.get("impute"),
            indicator=bool(d.get("indicator", False)),
            categories=d.get("categories"),
            buckets=d.get("buckets"),
        )


def _fill(kind: FeatureType, values: pd.Series, how: Impute) -> float | None:
    """The train split's fill value of a numeric, boolean or datetime column (after coerce)."""
    if kind == FeatureType.datetime:
        seconds = values.dropna().astype("int64") / 1e9
        return float(seconds.median()) if len(seconds) else 0.0
    known = values.dropna()
    if not len(known):
        return 0.0
    if kind == FeatureType.boolean:
        return 1.0 if float(known.mean()) >= 0.5 else 0.0  # the mode
    if how == Impute.zero:
        return 0.0
    return float(known.mean() if how == Impute.mean else known.median())


@dataclass
class FeatureTransform:
    columns: list[ColumnEncoding]
    target: str
    task: Task
    classes: list[Any] | None = None
    #: every input numeric and never missing, no indicator: the encoded matrix is the raw one
    is_identity: bool = False
    output_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.output_names:
            self.output_names = [name for c in self.columns for name in c.output_names()]

    @property
    def features(self) -> list[str]:
        return [c.name for c in self.columns]

    @classmethod
    def fit(cls, train: pd.DataFrame, contract: DataContract, cfg: FeaturesConfig) -> FeatureTransform:
        """Fit on the TRAIN rows only: imputation values and vocabularies come from ``train``."""
        columns = []
        for spec in contract.columns:
            values = coerce(train[spec.name].reset_index(drop=True), spec.type, spec.name, strict=False)
            gaps = bool(values.isna().any())
            enc = ColumnEncoding(spec.name, spec.type, indicator=bool(cfg.missing_indicator and gaps))
            if spec.type == FeatureType.categorical:
                counts = values.dropna().value_counts()
                ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: cfg.max_categories]
                enc.categories = sorted(k for k, _ in ranked)
            elif spec.type == FeatureType.text:
                enc.buckets = text_buckets_for(cfg.text_buckets, len(train))
            else:
                enc.impute = _fill(spec.type, values, cfg.impute)
            columns.append(enc)
        identity = all(c.type == FeatureType.numeric and not c.nullable for c in contract.columns) and not any(
            c.indicator for c in columns
        )
        return cls(columns, contract.target, contract.task, contract.classes, is_identity=identity)

    @classmethod
    def identity(cls, features: list[str], target: str, classes: list[Any] | None, task: Task) -> FeatureTransform:
        """The transform of data prepared before contracts existed: float columns as they are."""
        return cls([ColumnEncoding(f, FeatureType.numeric) for f in features], target, task, classes, is_identity=True)

    def transform(self, frame: pd.DataFrame, unseen: dict[str, int] | None = None) -> np.ndarray:
        """float32 [rows, len(output_names)]. Values are coerced leniently (a value that does not
        parse counts as missing; requests are checked strictly before: DataContract.check_frame).
        Non-missing categorical values outside the vocabulary are counted per column into
        ``unseen``."""
        n = len(frame)
        if self.is_identity and all(pd.api.types.is_numeric_dtype(frame[c]) for c in self._present(frame)):
            return frame[self.features].to_numpy(dtype=np.float32)
        if 0 < n <= SMALL_FRAME and frame.columns.is_unique:
            return self._transform_small(frame, unseen)
        return self.transform_pandas(frame, unseen)

    def _transform_small(self, frame: pd.DataFrame, unseen: dict[str, int] | None) -> np.ndarray:
        """:meth:`transform_pandas` in plain Python/numpy for a few rows: one preallocated
        float32 matrix filled column by column (the same numbers)."""
        n = len(frame)

        def coerced():  # lazily, column by column: a missing column fails where transform_pandas does
            for enc in self.columns:
                series = frame[enc.name]
                fast = coerce_small(series, enc.type, enc.name, strict=False)
                if fast is None:
                    values = coerce(series.reset_index(drop=True), enc.type, enc.name, strict=False)
                    yield values.to_numpy(), values.isna().to_numpy()
                elif fast[0].dtype == object:
                    yield fast[0], np.fromiter((v is None for v in fast[0]), dtype=bool, count=n)
                else:
                    yield fast[0], np.isnat(fast[0]) if fast[0].dtype.kind == "M" else np.isnan(fast[0])

        return self._encode_small(n, coerced(), unseen)

    def transform_checked(
        self, columns: dict[str, np.ndarray], n: int, unseen: dict[str, int] | None = None
    ) -> np.ndarray:
        """:meth:`transform` of :meth:`DataContract.check_columns`' output (the values already
        of their type: float64, datetime64[ns], str or None), with no DataFrame: a raw request's
        encoding. The same matrix as ``transform(check_frame(...))``."""
        if not 0 < n <= SMALL_FRAME:
            return self.transform(pd.DataFrame(columns, index=range(n)), unseen)
        coerced: list[tuple[np.ndarray, np.ndarray]] = []
        for enc in self.columns:
            values = columns[enc.name]
            if values.dtype == object:
                if all(v is None or v.__class__ is str for v in values):  # check_columns' own output
                    missing = np.fromiter((v is None for v in values), dtype=bool, count=n)
                else:  # pandas' coerce of an odd column may hold NaN
                    missing = pd.isna(values)
                    if missing.any():
                        values = values.copy()
                        values[missing] = None
            else:
                missing = np.isnat(values) if values.dtype.kind == "M" else np.isnan(values)
            coerced.append((values, missing))
        return self._encode_small(n, coerced, unseen)

    def _encode_small(
        self, n: int, coerced: Iterable[tuple[np.ndarray, np.ndarray]], unseen: dict[str, int] | None
    ) -> np.ndarray:
        """The matrix of the coerced (values, missing) of each encoded column, in order."""
        if n <= ROW_WISE:
            return self._encode_rows(n, coerced, unseen)
        out = np.zeros((n, sum(enc.width() for enc in self.columns)), dtype=np.float32)
        rows = np.arange(n)
        at = 0
        for enc, (values, missing) in zip(self.columns, coerced, strict=True):
            if enc.type == FeatureType.categorical:
                vocab = enc.vocabulary()
                k = len(vocab)
                codes = np.fromiter((vocab.get(v, k) if v is not None else k for v in values), dtype=np.int64, count=n)
                out[rows, at + codes] = 1.0
                width = k + 1
                if unseen is not None:
                    outside = int(((codes == k) & ~missing).sum())
                    if outside:
                        unseen[enc.name] = unseen.get(enc.name, 0) + outside
            elif enc.type == FeatureType.text:
                width = enc.buckets or 0
                for i, v in enumerate(values):
                    if v is not None:
                        for tok in tokens(v):
                            out[i, at + bucket(tok, enc.buckets)] += 1.0
            elif enc.type == FeatureType.datetime:
                stamps = np.where(missing, enc.fill_stamp(), values).astype("datetime64[ns]")
                days = stamps.astype("datetime64[D]")  # numpy floors, as pandas' .dt fields do
                years = days.astype("datetime64[Y]")
                out[:, at] = years.astype(np.int64) + 1970
                out[:, at + 1] = days.astype("datetime64[M]").astype(np.int64) % 12 + 1
                out[:, at + 2] = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday (3)
                out[:, at + 3] = (days - years.astype("datetime64[D]")).astype(np.int64) + 1
                out[:, at + 4] = stamps.astype(np.int64) / 1e9 / _DAY_S
                width = len(DATE_PARTS)
            else:
                fill = enc.impute if enc.impute is not None else 0.0
                out[:, at] = np.where(missing, fill, values.astype(np.float64))
                width = 1
            at += width
            if enc.indicator:
                out[:, at] = missing
                at += 1
        return out

    def _encode_rows(
        self, n: int, coerced: Iterable[tuple[np.ndarray, np.ndarray]], unseen: dict[str, int] | None
    ) -> np.ndarray:
        """:meth:`_encode_small` row by row in plain Python, for the few rows of a request: each
        numpy operation costs about a microsecond whatever its size, and the vectorised path
        takes some forty of them (13 for a date alone). ``transform_checked`` of one row went from
        111-121 us to 49-62 us here. The same numbers as :meth:`transform_pandas`
        (tests/data/test_small_batch_parity.py holds both paths to it)."""
        width = sum(enc.width() for enc in self.columns)
        rows = [[0.0] * width for _ in range(n)]
        at = 0
        for enc, (values, missing) in zip(self.columns, coerced, strict=True):
            gaps = missing.tolist()
            if enc.type == FeatureType.categorical:
                vocab = enc.vocabulary()
                k = len(vocab)
                outside = 0
                for row, v, gap in zip(rows, values.tolist(), gaps, strict=True):
                    code = k if v is None else vocab.get(v, k)
                    row[at + code] = 1.0
                    outside += code == k and not gap
                if outside and unseen is not None:
                    unseen[enc.name] = unseen.get(enc.name, 0) + outside
                step = k + 1
            elif enc.type == FeatureType.text:
                step = enc.buckets or 0
                for row, v in zip(rows, values.tolist(), strict=True):
                    if v is not None:
                        for tok in tokens(v):
                            row[at + bucket(tok, enc.buckets)] += 1.0
            elif enc.type == FeatureType.datetime:
                fill = int(enc.fill_stamp().astype(np.int64))
                for row, ns, gap in zip(rows, values.view(np.int64).tolist(), gaps, strict=True):
                    stamp = fill if gap else ns
                    day = datetime.date.fromordinal(_EPOCH_ORDINAL + stamp // _DAY_NS)  # floors, as numpy
                    row[at] = day.year
                    row[at + 1] = day.month
                    row[at + 2] = day.weekday()  # Monday 0, as pandas' dayofweek
                    row[at + 3] = day.timetuple().tm_yday
                    row[at + 4] = stamp / 1e9 / _DAY_S
                step = len(DATE_PARTS)
            else:
                fill = enc.impute if enc.impute is not None else 0.0
                for row, v, gap in zip(rows, values.tolist(), gaps, strict=True):
                    row[at] = fill if gap else v
                step = 1
            at += step
            if enc.indicator:
                for row, gap in zip(rows, gaps, strict=True):
                    row[at] = 1.0 if gap else 0.0
                at += 1
        return np.array(rows, dtype=np.float32).reshape(n, width)

    def transform_pandas(self, frame: pd.DataFrame, unseen: dict[str, int] | None = None) -> np.ndarray:
        """:meth:`transform` through pandas, column by column (big frames; no identity shortcut)."""
        n = len(frame)
        blocks: list[np.ndarray] = []
        for enc in self.columns:
            values = coerce(frame[enc.name].reset_index(drop=True), enc.type, enc.name, strict=False)
            missing = values.isna().to_numpy()
            if enc.type == FeatureType.categorical:
                vocab = {c: i for i, c in enumerate(enc.categories or [])}
                codes = np.array(
                    [vocab.get(v, len(vocab)) if v is not None else len(vocab) for v in values], dtype=np.int64
                )
                block = np.zeros((n, len(vocab) + 1), dtype=np.float32)
                block[np.arange(n), codes] = 1.0
                if unseen is not None:
                    outside = int(((codes == len(vocab)) & ~missing).sum())
                    if outside:
                        unseen[enc.name] = unseen.get(enc.name, 0) + outside
            elif enc.type == FeatureType.text:
                block = np.zeros((n, enc.buckets or 0), dtype=np.float32)
                for i, v in enumerate(values):
                    if v is not None:
                        for tok in tokens(v):
                            block[i, bucket(tok, enc.buckets)] += 1.0
            elif enc.type == FeatureType.datetime:
                stamps = values.fillna(pd.Timestamp(enc.impute or 0.0, unit="s"))
                block = np.column_stack(
                    [
                        stamps.dt.year,
                        stamps.dt.month,
                        stamps.dt.dayofweek,
                        stamps.dt.dayofyear,
                        stamps.astype("int64").to_numpy() / 1e9 / _DAY_S,
                    ]
                ).astype(np.float32)
            else:
                block = values.fillna(enc.impute if enc.impute is not None else 0.0).to_numpy(dtype=np.float32)[:, None]
            blocks.append(block.reshape(n, -1))
            if enc.indicator:
                blocks.append(missing.astype(np.float32)[:, None])
        if not blocks:
            return np.zeros((n, 0), dtype=np.float32)
        return np.concatenate(blocks, axis=1)

    def _present(self, frame: pd.DataFrame) -> list[str]:
        for name in self.features:
            if name not in frame.columns:
                enc = next(c for c in self.columns if c.name == name)
                raise ContractError(name, expected_text(enc.type), "no such column")
        return self.features

    def encode_target(self, y: pd.Series) -> np.ndarray:
        """Classification: int64 indices into ``classes``; regression: float32 values. A label
        outside the classes, or a missing target, is an error naming the row."""
        y = y.reset_index(drop=True)
        if self.task == Task.regression:
            values = pd.to_numeric(y, errors="coerce")
            bad = values.isna().to_numpy()
            if bad.any():
                i = int(np.argmax(bad))
                raise ContractError(self.target, "a number (the regression target)", y.iloc[i], i)
            return values.to_numpy(dtype=np.float32)
        index = {category_key(c): i for i, c in enumerate(self.classes or [])}
        keys = [None if pd.isna(v) else category_key(v) for v in y.tolist()]
        out = np.fromiter((index.get(k, -1) if k is not None else -1 for k in keys), dtype=np.int64, count=len(keys))
        if (out < 0).any():
            i = int(np.argmax(out < 0))
            raise DataValidationError(
                f"target '{self.target}' row {i} is {y.iloc[i]!r}, not one of the classes {self.classes}.",
                hint="prepare the data again (`aiinfra prepare`): the classes come from the prepared data",
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "target": self.target,
            "task": str(self.task),
            "classes": None if self.classes is None else [c.item() if hasattr(c, "item") else c for c in self.classes],
            "is_identity": self.is_identity,
            "columns": [c.to_dict() for c in self.columns],
            "output_names": list(self.output_names),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureTransform:
        _check_format(d, PREPROCESS)
        return cls(
            columns=[ColumnEncoding.from_dict(c) for c in d["columns"]],
            target=d["target"],
            task=Task(d["task"]),
            classes=d.get("classes"),
            is_identity=bool(d.get("is_identity", False)),
            output_names=list(d.get("output_names") or []),
        )

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / PREPROCESS
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> FeatureTransform:
        return cls.from_dict(_read_json(Path(directory) / PREPROCESS))
