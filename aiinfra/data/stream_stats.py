"""Exact statistics of the streaming prepare's written parts, and what is fitted from them.

Pass 2 of ``prepare.engine=stream``/``ray``: with the column types known (inferred on the train
sample), :func:`part_stats` reads one written part file in record batches and returns per column
mergeable counts: rows, gaps (after the type's coercion, and raw for the profile), sum and sum of
squares, min/max, category counts (capped at :data:`DISTINCT_CAP`, so memory does not grow
with rows) and a number column's distinct values (a sorted array, not counted, capped at
:data:`NUMBER_DISTINCT_CAP` per file and merged alike). Pass 1 gathers the same statistics per
split while it writes (:func:`table_stats`, by the stored type); pass 2 only re-reads the
columns inferred as another type. Train rows' statistics give the contract and the fitted
preprocessing; every row's give ``nullable`` and the data-quality profile.

Exact: null shares, category counts (below the cap), boolean counts, min/max, means, sums of
squares (variances). From the
sample: the median that ``features.impute=median`` fills gaps with, the example value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from aiinfra.data.contract import ColumnSpec, DataContract, coerce
from aiinfra.data.features import CONTRACT_CATEGORIES
from aiinfra.data.schema import FeatureType, Impute, text_buckets_for
from aiinfra.data.transform import ColumnEncoding, FeatureTransform
from aiinfra.storage import urls

#: distinct values counted per column; past it, new values are no longer told apart
DISTINCT_CAP = 100_000
#: numbers: only their distinct count is reported, so fewer are kept apart
NUMBER_DISTINCT_CAP = 10_000


def not_missing(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """True where a value is present (null and blank strings are gaps, as in the memory engine)."""
    present = pc.is_valid(column)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        present = pc.and_kleene(present, pc.not_equal(pc.utf8_trim_whitespace(column), ""))
    elif pa.types.is_floating(column.type):
        present = pc.and_kleene(present, pc.invert(pc.is_nan(column)))
    return pc.fill_null(present, False)


def stored_kinds(schema: pa.Schema) -> dict[str, str]:
    """The FeatureType each column's statistics are gathered as in pass 1, from its stored type:
    a column inferred as that type (or text for a string) needs no pass 2 (its statistics are the
    same as pass 2's); any other (a date written as a string, an override) is read again."""
    kinds = {}
    for f in schema:
        t = f.type
        if pa.types.is_integer(t) or pa.types.is_floating(t):
            kinds[f.name] = str(FeatureType.numeric)
        elif pa.types.is_boolean(t):
            kinds[f.name] = str(FeatureType.boolean)
        elif pa.types.is_string(t):
            kinds[f.name] = str(FeatureType.categorical)
        elif pa.types.is_timestamp(t):
            kinds[f.name] = str(FeatureType.datetime)
    return kinds


def needs_pass2(types: dict[str, str], stored: dict[str, str]) -> dict[str, str]:
    """The columns (-> type) whose pass-1 statistics were gathered as another type."""
    same = {(k, k) for k in stored.values()} | {(str(FeatureType.text), str(FeatureType.categorical))}
    return {name: kind for name, kind in types.items() if (kind, stored.get(name)) not in same}


def table_stats(stats: dict[str, dict], table: pa.Table, kinds: dict[str, str]) -> dict[str, dict]:
    """Add ``table``'s rows to ``stats`` (column -> entry) for the columns of ``kinds``."""
    for name, kind in kinds.items():
        _add_column(stats.setdefault(name, _empty()), table.column(name), FeatureType(kind), name)
    return stats


def _empty() -> dict[str, Any]:
    return {
        "rows": 0,
        "nulls": 0,
        "raw_nulls": 0,
        "sum": 0.0,
        "sumsq": 0.0,  # exact and mergeable: a variance is sumsq / n - (sum / n) ** 2
        "min": None,
        "max": None,
        "raw_min": None,
        "raw_max": None,
        "counts": {},
        "raw_counts": {},
        "capped": False,
    }


def _count(target: dict, keys: list, counts: list, entry: dict, cap: int = DISTINCT_CAP) -> None:
    for k, n in zip(keys, counts, strict=True):
        if k in target:
            target[k] += n
        elif len(target) < cap:
            target[k] = n
        else:
            entry["capped"] = True


def _minmax(entry: dict, lo: Any, hi: Any, prefix: str = "") -> None:
    if lo is None:
        return
    a, b = entry[prefix + "min"], entry[prefix + "max"]
    entry[prefix + "min"] = lo if a is None else min(a, lo)
    entry[prefix + "max"] = hi if b is None else max(b, hi)


def _numbers(entry: dict, values: np.ndarray, counted: bool = False, raw: bool = False) -> None:
    """Known float values: sum, range (with ``raw`` the profile's raw range too), distinct
    values (capped; with ``counted`` (booleans as 1.0/0.0) how often each occurs, else only
    which occur: a number's count is never used)."""
    if not len(values):
        return
    entry["sum"] += float(values.sum())
    # einsum, not np.dot: dot goes to OpenBLAS, whose worker threads wait for a core that the
    # other prepare thread holds (10 s of 45 s at 20M rows on 2 cores); einsum's loop stays here
    entry["sumsq"] += float(np.einsum("i,i->", values, values))
    lo, hi = float(values.min()), float(values.max())
    _minmax(entry, lo, hi)
    if raw:
        _minmax(entry, lo, hi, "raw_")
    if counted:
        keys, counts = np.unique(values, return_counts=True)
        _count(entry["counts"], keys.tolist(), counts.tolist(), entry)
    elif not entry["capped"]:  # once capped, no longer told apart: stop paying for the distinct values
        _add_distinct(entry, np.unique(values), NUMBER_DISTINCT_CAP)


def _add_distinct(entry: dict, keys: np.ndarray, cap: int) -> None:
    """Numbers' distinct values: a sorted float64 array (not a dict of Python floats: merging
    and holding them costs C time and 8 bytes a value), the smallest ``cap`` kept."""
    seen = entry["counts"]
    merged = keys if not len(seen) else np.union1d(np.asarray(seen, dtype=np.float64), keys)
    if len(merged) >= cap:
        merged, entry["capped"] = merged[:cap], True
    entry["counts"] = merged


def _known_floats(column: pa.ChunkedArray) -> np.ndarray:
    """A number column's known values as float64 (nulls and NaN left out)."""
    if pa.types.is_floating(column.type):
        # a float's null reads as NaN, a gap alike; float32 sums in float64, as every number
        values = column.to_numpy().astype(np.float64, copy=False)
        nan = np.isnan(values)
        return values[~nan] if nan.any() else values
    if column.null_count:
        column = column.drop_null()
    return column.to_numpy().astype(np.float64)


def _add_column(entry: dict, column: pa.ChunkedArray, kind: FeatureType, name: str) -> None:
    n = len(column)
    entry["rows"] += n
    t = column.type
    strings = pa.types.is_string(t) or pa.types.is_large_string(t)
    numeric_arrow = pa.types.is_integer(t) or pa.types.is_floating(t)
    # the common cases read each value once: no gap mask, no filtered copy of the column
    if kind == FeatureType.numeric and numeric_arrow:
        values = _known_floats(column)
        entry["raw_nulls"] += n - len(values)
        entry["nulls"] += n - len(values)
        _numbers(entry, values, raw=True)
        return
    if kind in (FeatureType.categorical, FeatureType.text) and (strings or pa.types.is_integer(t)):
        # counted first, gaps (null; for strings also blank, as not_missing) told among the
        # distinct values: one hash pass instead of a trim, a mask and a filter of every value
        counts = pc.value_counts(column)
        values, numbers = counts.field("values"), counts.field("counts")
        gap = pc.fill_null(pc.invert(not_missing(values)), True).to_numpy(zero_copy_only=False)
        gaps = int(numbers.to_numpy()[gap].sum())
        entry["raw_nulls"] += gaps
        entry["nulls"] += gaps
        known = pc.invert(pa.array(gap))
        keys, numbers = values.filter(known), numbers.filter(known)
        if pa.types.is_integer(t) and len(keys):
            ints = keys.to_numpy()
            _minmax(entry, float(ints.min()), float(ints.max()), "raw_")
        keys_text = keys.to_pylist() if strings else [str(k) for k in keys.to_pylist()]
        _count(entry["counts"], keys_text, numbers.to_pylist(), entry)
        return
    if kind == FeatureType.boolean and pa.types.is_boolean(t):
        known = n - column.null_count
        trues = int(pc.sum(column).as_py() or 0)
        entry["raw_nulls"] += n - known
        entry["nulls"] += n - known
        _count(entry["counts"], [1.0, 0.0], [trues, known - trues], entry)
        _count(entry["raw_counts"], ["True", "False"], [trues, known - trues], entry)
        return
    if kind == FeatureType.datetime and pa.types.is_timestamp(t):
        known = column.drop_null()
        entry["raw_nulls"] += n - len(known)
        entry["nulls"] += n - len(known)
        ns = pc.cast(pc.cast(known, pa.timestamp("ns", t.tz)), pa.int64()).to_numpy()
        _numbers(entry, ns / 1e9)
        return
    present = not_missing(column)
    known_raw = int(pc.sum(present).as_py() or 0)
    entry["raw_nulls"] += n - known_raw
    if numeric_arrow:
        raw = pc.cast(column.filter(present), pa.float64()).to_numpy()
        if len(raw):
            _minmax(entry, float(raw.min()), float(raw.max()), "raw_")
    # anything else (numbers or booleans or dates written as strings): the contract's own coercion
    series = column.to_pandas()
    values = coerce(series.reset_index(drop=True), kind, name, strict=False)
    known = values.dropna()
    entry["nulls"] += n - len(known)
    if kind == FeatureType.boolean:
        raw = series[present.to_numpy(zero_copy_only=False)].astype(str).value_counts()
        _count(entry["raw_counts"], list(raw.index), raw.tolist(), entry)
    if kind in (FeatureType.numeric, FeatureType.boolean):
        _numbers(entry, known.to_numpy(dtype=np.float64), counted=kind == FeatureType.boolean)
    elif kind == FeatureType.datetime:
        _numbers(entry, known.astype("int64").to_numpy() / 1e9)
    else:
        counts = known.value_counts()
        _count(entry["counts"], list(counts.index), counts.tolist(), entry)


def part_stats(path: str, types: dict[str, str], batch_rows: int) -> dict[str, dict[str, Any]]:
    """Per column statistics of one written part file (``types``: column -> FeatureType)."""
    fs, inner = urls.arrow_filesystem(path)
    stats = {name: _empty() for name in types}
    pf = pq.ParquetFile(fs.open_input_file(inner))
    for batch in pf.iter_batches(batch_size=batch_rows, columns=list(types)):
        table_stats(stats, pa.Table.from_batches([batch]), types)
    return stats


def merge_stats(into: dict[str, dict], other: dict[str, dict]) -> dict[str, dict]:
    for name, entry in other.items():
        mine = into.setdefault(name, _empty())
        for key in ("rows", "nulls", "raw_nulls", "sum", "sumsq"):
            mine[key] += entry[key]
        _minmax(mine, entry["min"], entry["max"])
        _minmax(mine, entry["raw_min"], entry["raw_max"], "raw_")
        mine["capped"] = mine["capped"] or entry["capped"]
        if isinstance(entry["counts"], np.ndarray):  # the same cap as per file: merging never adds more
            _add_distinct(mine, entry["counts"], NUMBER_DISTINCT_CAP)
        else:
            _count(mine["counts"], list(entry["counts"]), list(entry["counts"].values()), mine)
        _count(mine["raw_counts"], list(entry["raw_counts"]), list(entry["raw_counts"].values()), mine)
    return into


def _ranked(counts: dict, limit: int) -> list[tuple[Any, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]


def contract_from_stats(sampled: DataContract, train: dict, every: dict, task: Any) -> DataContract:
    """The contract: the types and dropped columns inferred on the sample, the task decided on
    the whole target, the statistics exact over the train parts (``nullable``: every part)."""
    columns = []
    for spec in sampled.columns:
        t, a = train[spec.name], every[spec.name]
        known = t["rows"] - t["nulls"]
        out = ColumnSpec(
            name=spec.name,
            type=spec.type,
            nullable=a["nulls"] > 0,
            null_share=round(t["nulls"] / t["rows"], 6) if t["rows"] else 0.0,
            distinct=len(t["counts"]),
            example=spec.example,
        )
        if spec.type == FeatureType.categorical:
            out.categories = {str(k): int(v) for k, v in _ranked(t["counts"], CONTRACT_CATEGORIES)}
        elif spec.type == FeatureType.boolean:
            out.categories = {"true": int(t["counts"].get(1.0, 0)), "false": int(t["counts"].get(0.0, 0))}
        elif spec.type in (FeatureType.numeric, FeatureType.datetime) and known:
            out.min, out.max = t["min"], t["max"]
        columns.append(out)
    return DataContract(columns, sampled.target, task.task, task.classes, task.target_type, dict(sampled.dropped))


def transform_from_stats(contract: DataContract, train: dict, sample: Any, cfg: Any) -> FeatureTransform:
    """The preprocessing, as :meth:`FeatureTransform.fit` would fit it on every train row:
    vocabularies from the exact counts (``features.max_categories``), means and the boolean mode
    exact; the median (``features.impute=median``, datetime gaps) from the train sample."""
    columns = []
    for spec in contract.columns:
        t = train[spec.name]
        known = t["rows"] - t["nulls"]
        enc = ColumnEncoding(spec.name, spec.type, indicator=bool(cfg.missing_indicator and t["nulls"] > 0))
        if spec.type == FeatureType.categorical:
            enc.categories = sorted(str(k) for k, _ in _ranked(t["counts"], cfg.max_categories))
        elif spec.type == FeatureType.text:
            enc.buckets = text_buckets_for(cfg.text_buckets, t["rows"])
        elif not known:
            enc.impute = 0.0
        elif spec.type == FeatureType.boolean:
            enc.impute = 1.0 if t["counts"].get(1.0, 0) / known >= 0.5 else 0.0
        elif spec.type == FeatureType.datetime:
            values = coerce(sample[spec.name].reset_index(drop=True), spec.type, spec.name, strict=False).dropna()
            enc.impute = float((values.astype("int64") / 1e9).median()) if len(values) else 0.0
        elif cfg.impute == Impute.zero:
            enc.impute = 0.0
        elif cfg.impute == Impute.mean:
            enc.impute = t["sum"] / known
        else:
            values = coerce(sample[spec.name].reset_index(drop=True), spec.type, spec.name, strict=False).dropna()
            enc.impute = float(values.median()) if len(values) else 0.0
        columns.append(enc)
    identity = all(c.type == FeatureType.numeric and not c.nullable for c in contract.columns) and not any(
        c.indicator for c in columns
    )
    return FeatureTransform(columns, contract.target, contract.task, contract.classes, is_identity=identity)
