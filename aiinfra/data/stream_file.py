"""One file of the streaming prepare (``prepare.engine=stream`` and ``ray``): the unit of work.

:func:`prepare_file` streams one input file's record batches, checks them against the dataset's
schema (the first file's), gives each row its split by a seeded hash, writes the file's rows of
each split to ``<out>/<split>.parquet/part-<file:05d>-<n:03d>.parquet`` and returns a mergeable
:class:`FilePartial` (rows, part hashes, the target's value counts, a bottom-k sample of train
rows). It is a pure function of (file, index, plan): the local loop and Ray's tasks call the same
one, so both engines write the same bytes and the same statistics.

The split of a row: ``u = splitmix64(base ^ mix(seed))`` mapped to [0, 1), where ``base`` is the
hash of ``split.key``'s value or of (the file's relative name, the row's position in the file);
``u < split.test`` is test, ``< split.test + split.val`` val, else train. Adding rows or files
never moves a row. The train sample: the ``prepare.sample_rows`` train rows with the smallest
second hash of (file, position): uniform, deterministic and mergeable across files and engines.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from aiinfra.data.stream_stats import merge_stats, not_missing, stored_kinds, table_stats
from aiinfra.errors import AiinfraError, DataValidationError
from aiinfra.storage import urls

SPLITS = ("train", "val", "test")
#: the sample's ordering column (dropped before the sample is used)
H2 = "__aiinfra_h2"
#: distinct target values kept; beyond it the target is regression- or identifier-like
TARGET_DISTINCT_CAP = 10_000
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser over a uint64 array (wrapping arithmetic: numpy does not warn)."""
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _mix(value: int) -> np.uint64:
    return splitmix64(np.array([value & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]


def name_hash(name: str) -> np.uint64:
    return np.uint64(int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little"))


def unit(h: np.ndarray) -> np.ndarray:
    """uint64 -> [0, 1) float64 (the top 53 bits)."""
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


@dataclass(frozen=True)
class InputFile:
    """One input file: its path (local or URL) and the name its rows are hashed by (relative to
    ``source.path``). ``table``: a source read into memory (sklearn, bundled, synthetic)."""

    path: str
    name: str
    table: Any = None


class SampleBound:
    """The largest sample hash of the merged train sample once it is full: a row above it can
    never enter the final sample, so files still running skip it. Shared by the stream engine's
    threads; Ray's tasks get a copy (they only prune less): the sample is the same either way."""

    def __init__(self) -> None:
        self.value: np.uint64 | None = None

    def lower(self, value: np.uint64) -> None:
        if self.value is None or value < self.value:
            self.value = value


@dataclass(frozen=True)
class FilePlan:
    """What every file's work needs (plain, picklable: it travels to Ray's workers)."""

    out: str  # the prepared directory (or the temporary one it is written to)
    kind: str  # parquet | csv | memory
    target: str
    columns: tuple[str, ...]  # features + target, in order
    schema: Any  # pa.Schema of those columns (the first file's)
    seed: int
    val: float
    test: float
    key: str | None
    batch_rows: int
    part_rows: int
    sample_rows: int
    bound: SampleBound | None = field(default=None, compare=False)


@dataclass
class FilePartial:
    """Mergeable statistics of one file (or, merged, of several)."""

    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    dropped_target: int = 0
    parts: list[tuple[str, str, int, str]] = field(default_factory=list)  # (split, relative path, rows, value hash)
    target_counts: dict[Any, int] = field(default_factory=dict)
    target_capped: bool = False
    sample: Any = None  # pa.Table of train rows + H2 holding the smallest sample_rows H2s (unsorted)
    #: pass-1 column statistics (stream_stats) of the "train" rows and of "every" split's rows
    stats: dict[str, dict] = field(default_factory=lambda: {"train": {}, "every": {}})
    #: the sample's sample_rows-th smallest H2 once it has that many rows (rows above cannot enter)
    sample_limit: Any = None

    def merge(self, other: FilePartial, sample_rows: int) -> FilePartial:
        for split in SPLITS:
            self.rows[split] += other.rows[split]
        self.dropped_target += other.dropped_target
        self.parts += other.parts
        _add_counts(self, other.target_counts, other.target_capped)
        self.sample, self.sample_limit = pruned([self.sample, other.sample], sample_rows)
        for key in ("train", "every"):
            merge_stats(self.stats[key], other.stats[key])
        return self


def _add_counts(partial: FilePartial, counts: dict[Any, int], capped: bool) -> None:
    target = partial.target_counts
    for value, n in counts.items():
        if value in target:
            target[value] += n
        elif len(target) < TARGET_DISTINCT_CAP:
            target[value] = n
        else:
            partial.target_capped = True
    partial.target_capped = partial.target_capped or capped


def bottom_k(tables: list, k: int):
    """The ``k`` rows with the smallest H2 of these tables, sorted by it (None for none)."""
    if not tables:
        return None
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    order = pc.sort_indices(table, sort_keys=[(H2, "ascending")])
    return table.take(order[:k])


def pruned(tables: list, k: int, slack: int = 2):
    """(a table of at least the ``k`` rows with the smallest H2 of these tables, in no order;
    the largest H2 it keeps once it holds ``k``, else None). The rows are cut to ``k`` only once
    they pass ``slack * k``: a cut is a scan, a sort and a gather of every column, so the sample
    is sorted once, at the end (:func:`bottom_k`), not once per batch or file."""
    tables = [t for t in tables if t is not None and t.num_rows]
    if not tables:
        return None, None
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    if table.num_rows < k:
        return table, None
    h2 = table.column(H2).to_numpy()
    limit = np.partition(h2, k - 1)[k - 1]
    if table.num_rows > slack * k:
        table = table.filter(pa.array(h2 <= limit))
    return table, limit


class _ValueDigest:
    """A hash of a part's values (not of its Parquet bytes, which carry the writer's version):
    per column, one running hash of each canonical stream (the rows that are null, by their
    position in the part; the values; a string's lengths and bytes), so it is the same however
    the part's rows were sliced, by either engine and any pyarrow. The part's hash: the columns'
    names, types and those hashes."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema, self.rows = schema, 0
        self.columns = {f.name: [hashlib.sha256() for _ in range(3)] for f in schema}

    def update(self, table: pa.Table) -> None:
        for f in self.schema:
            digests, at = self.columns[f.name], self.rows
            for chunk in table.column(f.name).chunks:
                for digest, data in zip(digests, _canonical(chunk, at), strict=False):
                    digest.update(data)
                at += len(chunk)
        self.rows += table.num_rows

    def hexdigest(self) -> str:
        total = hashlib.sha256()
        for f in self.schema:
            total.update(f"{f.name}:{f.type}\n".encode())
            for digest in self.columns[f.name]:
                total.update(digest.digest())
        return total.hexdigest()


def part_hash(table: pa.Table) -> str:
    """A part's value hash (as :class:`_ValueDigest` gathers it while the part is written)."""
    digest = _ValueDigest(table.schema)
    digest.update(table)
    return digest.hexdigest()


def dataset_hash(parts: list[tuple[str, str, int, str]]) -> str:
    """meta.json's ``dataset_hash``: every part's name, rows and value hash, by name."""
    total = hashlib.sha256()
    for _split, relative, rows, values in sorted(parts, key=lambda part: part[1]):
        total.update(f"{relative}:{rows}:{values}\n".encode())
    return total.hexdigest()[:16]


def _canonical(array: pa.Array, at: int) -> list:
    """What stands for ``array``'s values (rows ``at``... of its part): the positions of its
    nulls, then the values with nulls as zero (fixed width, NaN as one bit pattern), or a
    string's lengths and its bytes; anything else as its text."""
    if not len(array):
        return []
    t = array.type
    if pa.types.is_dictionary(t):
        array, t = array.dictionary_decode(), t.value_type
    nulls = b""
    if array.null_count:
        valid = pc.is_valid(array).to_numpy(zero_copy_only=False)
        nulls = np.flatnonzero(~valid).astype(np.int64) + at
    if pa.types.is_boolean(t):
        return [nulls, pc.fill_null(array, False).to_numpy(zero_copy_only=False).view(np.uint8)]
    if pa.types.is_floating(t):
        values = array if t == pa.float64() else array.cast(pa.float64())
        if array.null_count:  # no column without gaps pays for a filled copy
            values = pc.fill_null(values, 0.0)
        values = values.to_numpy(zero_copy_only=False)
        nan = np.isnan(values)
        return [nulls, np.where(nan, np.nan, values) if nan.any() else values]
    if (pa.types.is_integer(t) or pa.types.is_temporal(t)) and t.bit_width in (8, 16, 32, 64):
        width = pa.int64() if t.bit_width == 64 else pa.int32()
        ints = array.view(width) if t.bit_width in (32, 64) else array.cast(width)
        return [nulls, (pc.fill_null(ints, 0) if array.null_count else ints).to_numpy()]
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        return [nulls, repr(array.to_pylist()).encode()]
    if array.null_count:  # a null's slot may span bytes: the lengths and bytes of the values only
        array = pc.fill_null(array, "")
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64 if pa.types.is_large_string(t) else np.int32)
    offsets = offsets[array.offset : array.offset + len(array) + 1]
    data = array.buffers()[2]
    body = memoryview(data)[int(offsets[0]) : int(offsets[-1])] if data is not None else b""
    return [nulls, np.diff(offsets).astype(np.int64), body]


#: rows a part's row group gathers before it is written (memory: a few of these per thread)
ROW_GROUP_ROWS = 131_072


class _SplitWriter:
    """The part files of one split of one file, rolling over at ``part_rows``."""

    def __init__(self, plan: FilePlan, split: str, index: int) -> None:
        self.plan, self.split, self.index = plan, split, index
        self.n, self.rows, self.writer, self.sink = 0, 0, None, None
        self.parts: list[tuple[str, str, int, str]] = []
        self.pending: list[pa.Table] = []  # rows not yet in a row group
        self.pending_rows = 0

    def write(self, table: pa.Table) -> None:
        start = 0
        while start < table.num_rows:
            if self.writer is None:
                self._open()
            take = min(self.plan.part_rows - self.rows, table.num_rows - start)
            piece = table.slice(start, take)
            self.digest.update(piece)
            self.pending.append(piece)
            self.pending_rows += take
            self.rows += take
            start += take
            if self.rows >= self.plan.part_rows:
                self.close()
            elif self.pending_rows >= ROW_GROUP_ROWS:
                self._flush()

    def _flush(self) -> None:
        """Write the pending rows as one row group: a split's share of a batch (10k rows for a
        15 % split) is a small group, and each costs its own pages, statistics and compression
        calls (2 s of 29 s at 20M rows)."""
        if self.pending_rows:
            table = pa.concat_tables(self.pending) if len(self.pending) > 1 else self.pending[0]
            self.writer.write_table(table, row_group_size=self.pending_rows)
        self.pending, self.pending_rows = [], 0

    def _open(self) -> None:
        # a directory named like the flat layout's file: dvc.yaml's deps and monitor.current fit both
        self.relative = f"{self.split}.parquet/part-{self.index:05d}-{self.n:03d}.parquet"
        self.sink = urls.open_file(urls.join(self.plan.out, self.relative), "wb")
        self.digest = _ValueDigest(self.plan.schema)
        # dictionary pages for strings only: trying them on floats costs time and rarely pays
        strings = [f.name for f in self.plan.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        self.writer = pq.ParquetWriter(self.sink, self.plan.schema, compression="snappy", use_dictionary=strings)

    def close(self) -> None:
        if self.writer is None:
            return
        self._flush()
        self.writer.close()
        self.sink.close()
        self.parts.append((self.split, self.relative, self.rows, self.digest.hexdigest()))
        self.writer, self.sink, self.rows = None, None, 0
        self.n += 1


def open_batches(file: InputFile, kind: str, batch_rows: int, columns: list[str] | None, schema: Any = None):
    """(the file's Arrow schema, an iterator of its record batches); unreadable -> one error
    naming the file."""
    shown = urls.redact(file.path)
    try:
        if kind == "memory":
            table = file.table if columns is None else file.table.select(columns)
            return table.schema, iter(table.to_batches(max_chunksize=batch_rows))
        fs, inner = urls.arrow_filesystem(file.path)
        if kind == "csv":
            import pyarrow.csv as pacsv

            convert = pacsv.ConvertOptions(
                include_columns=columns,
                column_types=None if schema is None else {f.name: f.type for f in schema},
                strings_can_be_null=True,
            )
            read = pacsv.ReadOptions(block_size=32 << 20)
            try:
                reader = pacsv.open_csv(fs.open_input_stream(inner), read_options=read, convert_options=convert)
            except pa.ArrowKeyError as exc:  # a column of the first file missing here
                raise DataValidationError(
                    f"CSV file '{shown}': {exc} (the first file has it).",
                    hint="every file of source.path needs the same columns: fix or move that file",
                ) from None
            except pa.ArrowInvalid as exc:
                if "conversion error" not in str(exc):
                    raise
                raise _csv_error(exc, file, fs, inner) from None
            return reader.schema, _guarded(reader, shown, lambda exc: _csv_error(exc, file, fs, inner))
        pf = pq.ParquetFile(fs.open_input_file(inner))
        present = pf.schema_arrow.names
        missing = [c for c in columns or [] if c not in present]
        if missing:
            raise DataValidationError(
                f"Parquet file '{shown}' has no column(s) {', '.join(missing)} (the first file has them).",
                hint="every file of source.path needs the same columns: fix or move that file",
            )
        schema_of = pf.schema_arrow if columns is None else pa.schema([pf.schema_arrow.field(c) for c in columns])
        return schema_of, _guarded(pf.iter_batches(batch_size=batch_rows, columns=columns), shown)
    except AiinfraError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataValidationError(
            f"cannot read {kind} file '{shown}': {exc}", hint="the file is damaged or not a Parquet/CSV file"
        ) from None


def _guarded(batches, shown: str, explain: Any = None):
    try:
        yield from batches
    except (pa.ArrowException, OSError) as exc:
        if explain is not None and isinstance(exc, pa.ArrowInvalid) and "conversion error" in str(exc):
            raise explain(exc) from None
        raise DataValidationError(
            f"cannot read '{shown}': {exc}", hint="the file is damaged, or a value does not fit its column's type"
        ) from None


#: source.columns' declared types as the CSV reader's column types
_DECLARED_ARROW = {
    "float": pa.float64(),
    "int": pa.int64(),
    "str": pa.string(),
    "category": pa.string(),
    "bool": pa.bool_(),
}


def csv_schema(inferred: pa.Schema, source_cfg: Any) -> pa.Schema:
    """The column types every CSV file is read with: the declared ``source.columns`` type, else
    the first file's first block's, widened so that later files fit: integers (not the target's:
    its classes stay integers) as float64 (a 7.5 further on), an all-empty column as strings."""
    declared = dict(getattr(source_cfg, "columns", None) or {})
    fields = []
    for f in inferred:
        if f.name in declared:
            t = _DECLARED_ARROW[str(declared[f.name])]
        elif pa.types.is_integer(f.type) and f.name != source_cfg.target:
            t = pa.float64()
        elif pa.types.is_null(f.type):
            t = pa.string()
        else:
            t = f.type
        fields.append(pa.field(f.name, t))
    return pa.schema(fields)


def _csv_error(exc: Exception, file: InputFile, fs: Any, inner: str) -> DataValidationError:
    """A value that does not fit its column's type: one error naming the file, the column and
    the setting that fixes it."""
    import csv
    import io
    import re

    shown = urls.redact(file.path)
    found = re.search(r"column #(\d+)", str(exc))
    name = None
    if found is not None:
        try:
            with fs.open_input_stream(inner) as f:
                head = f.read(1 << 16).decode("utf-8-sig", errors="replace").splitlines()[:1]
            header = next(csv.reader(io.StringIO(head[0] if head else "")), [])
            name = header[int(found.group(1))].strip()
        except (OSError, IndexError, pa.ArrowException):
            name = None
    value = re.search(r"(CSV conversion error.*)$", str(exc))
    detail = value.group(1) if value else str(exc)
    column = f"column '{name}'" if name else "a column"
    setting = f"source.columns={{{name}: str}}" if name else "source.columns={column: str}"
    return DataValidationError(
        f"CSV file '{shown}': {column} has a value that does not fit the type the files are read with ({detail}).",
        hint=f"declare the column's type for every file, e.g. {setting} (or float for numbers), or fix that file",
    )


def _check_schema(file: InputFile, schema: pa.Schema, expected: pa.Schema) -> None:
    for want in expected:
        got = schema.field(want.name).type if want.name in schema.names else None
        if got is not None and got != want.type and not pa.types.is_null(got):
            raise DataValidationError(
                f"file '{urls.redact(file.path)}': column '{want.name}' is {got}, but the first file's is {want.type}.",
                hint="every file of source.path needs the same schema: rewrite that file, or move it out",
            )


#: the hash of a row whose split.key is null (any batch, any type)
_NULL_KEY = np.uint64(0x6A09E667F3BCC908)


def key_hashes(column: pa.Array) -> np.ndarray:
    """A uint64 hash of each ``split.key`` value that depends on the value only, never on the
    other rows of its batch: numpy turns an int column with a null into float64 (and a bool one
    into objects), which hashes other bits, so every row of such a batch would move. Integers,
    booleans, whole floats, dates and times hash as int64; other floats by their bits; strings (and
    anything else, as its text) as strings; a null (or NaN) as one constant."""
    import pandas as pd

    t = column.type
    valid = pc.fill_null(pc.is_valid(column), False).to_numpy(zero_copy_only=False)
    if pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_temporal(t):
        if pa.types.is_temporal(t):
            column = column.cast(pa.int64()) if t.bit_width == 64 else column.cast(pa.int32()).cast(pa.int64())
        ints = pc.fill_null(column.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
        base = splitmix64(ints.astype(np.int64).view(np.uint64))
    elif pa.types.is_floating(t):
        floats = pc.fill_null(column.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False) + 0.0  # -0.0 -> 0.0
        valid &= ~np.isnan(floats)
        whole = valid & (floats == np.round(floats)) & (np.abs(floats) < 2.0**63)
        ints = np.where(whole, floats, 0.0).astype(np.int64)
        base = np.where(whole, splitmix64(ints.view(np.uint64)), splitmix64(floats.view(np.uint64) ^ _GOLDEN))
    else:
        text = pc.fill_null(column.cast(pa.string()), "").to_numpy(zero_copy_only=False)
        base = pd.util.hash_array(np.asarray(text, dtype=object))  # categorized first: the same hashes
    return np.where(valid, base, _NULL_KEY).astype(np.uint64)


def row_hashes(batch: pa.RecordBatch, name: np.uint64, start: int, plan: FilePlan) -> tuple[np.ndarray, np.ndarray]:
    """(split hash u in [0, 1), sample hash) of each row of ``batch`` (rows ``start``... of its file)."""
    position = np.arange(start, start + batch.num_rows, dtype=np.uint64)
    identity = splitmix64(position ^ name)
    base = identity if plan.key is None else key_hashes(batch.column(plan.key))
    u = unit(splitmix64(base ^ _mix(plan.seed)))
    h2 = splitmix64(identity ^ _mix(plan.seed ^ 0x5DEECE66D))
    return u, h2


def prepare_file(file: InputFile, index: int, plan: FilePlan) -> FilePartial:
    """Split, write and summarise one input file (see the module docstring)."""
    schema, batches = open_batches(file, plan.kind, plan.batch_rows, list(plan.columns), plan.schema)
    _check_schema(file, schema, plan.schema)
    writers = {split: _SplitWriter(plan, split, index) for split in SPLITS}
    partial = FilePartial()
    name, start, pending = name_hash(file.name), 0, []
    threshold = None  # the file's sample's k-th smallest H2 once it is full: rows above it cannot enter
    kinds = stored_kinds(plan.schema)
    per_split: dict[str, dict] = {split: {} for split in SPLITS}
    try:
        for batch in batches:
            batch = batch.select(list(plan.columns))
            if batch.schema != plan.schema:
                batch = batch.cast(plan.schema)
            u, h2 = row_hashes(batch, name, start, plan)
            start += batch.num_rows
            keep = not_missing(batch.column(plan.target)).to_numpy(zero_copy_only=False)
            partial.dropped_target += int((~keep).sum())
            splits = np.where(u < plan.test, 2, np.where(u < plan.test + plan.val, 1, 0))
            splits[~keep] = -1
            table = pa.Table.from_batches([batch])
            for code, split in enumerate(SPLITS):
                mask = splits == code
                n = int(mask.sum())
                if not n:
                    continue
                part = table.filter(pa.array(mask))
                writers[split].write(part)
                table_stats(per_split[split], part, kinds)
                partial.rows[split] += n
                if split == "train":
                    shared = None if plan.bound is None else plan.bound.value
                    limit = shared if threshold is None else threshold if shared is None else min(threshold, shared)
                    chosen = mask if limit is None else mask & (h2 < limit)
                    if chosen.any():
                        pending.append(table.filter(pa.array(chosen)).append_column(H2, pa.array(h2[chosen])))
                        if sum(t.num_rows for t in pending) >= 2 * plan.sample_rows:
                            sample, limit = pruned(pending, plan.sample_rows)
                            pending, threshold = [sample], (threshold if limit is None else limit)
            counts = pc.value_counts(batch.column(plan.target).filter(pa.array(keep)))
            _add_counts(
                partial,
                dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True)),
                False,
            )
        for writer in writers.values():
            writer.close()
    finally:
        for writer in writers.values():
            if writer.writer is not None:  # a failure mid-file: close what is open (the run deletes it)
                writer.writer.close()
                writer.sink.close()
    partial.parts = [p for split in SPLITS for p in writers[split].parts]
    partial.sample, partial.sample_limit = pruned(pending, plan.sample_rows, slack=1)
    every: dict[str, dict] = {}
    for split in SPLITS:
        merge_stats(every, per_split[split])
    partial.stats = {"train": per_split["train"], "every": every}
    return partial
