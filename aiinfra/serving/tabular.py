"""Raw rows for a model with a data contract: request bodies with strings, booleans, dates and
nulls -> the checked rows (for the prediction log) and their encoded float32 matrix (for the model).

The runtime uses :class:`RawRows` as a model's ``inputs`` decoder when the model directory has a
contract and its fitted preprocessing is not the identity (an all-numeric, gap-free model keeps
:class:`aiinfra.serving.runtime.FloatRows` and its speed). Work is split in two:

* per request, on the event loop (``from_invocations``, ``from_v2``): the wire format is parsed
  into plain column lists (:class:`RawBatch`). Only the body's structure is judged here
  (:class:`RequestError`); the values are not.
* per forward pass (``prepare``, called by the batcher): the batch's rows become one DataFrame,
  :meth:`DataContract.check_frame` holds them to the contract, the transform encodes them
  (:class:`EncodedBatch`). Pandas costs about the same for 1 row as for 100, so paying it once per
  batch keeps the raw path near the float path under load. When the batch breaks the contract,
  each request is checked on its own: only the requests at fault fail (a 400 naming the column and
  the expected type: ``predict.handle`` maps the ``ContractError``), the others are predicted.

Categories the training split never had are encoded as unknown and counted per column
(``EncodedBatch.unseen`` -> ``aiinfra_unseen_category_total{column=...}``).
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from aiinfra.data.features import ROW_WISE, ContractError, DataContract, FeatureTransform, FeatureType
from aiinfra.errors import DataValidationError
from aiinfra.serving import protocol
from aiinfra.serving.protocol import RequestError, shown

#: a JSON value a raw column may hold (anything else is a 422 naming the column and row)
_SCALARS = (str, bool, int, float, type(None))
_F32_MAX = float(np.finfo(np.float32).max)
#: the dtype of an empty checked column (EncodedBatch of no rows), by type; str columns: object
_EMPTY_DTYPES = {
    FeatureType.numeric: np.float64,
    FeatureType.boolean: np.float64,
    FeatureType.datetime: "datetime64[ns]",
}
#: V2 datatypes of a per-column tensor, with their numpy dtype for the binary extension (BYTES: none)
_V2_DATATYPES = {**protocol.NUMERIC_DATATYPES, "BYTES": None}


class RawBatch:
    """The rows of one request (or of several, concatenated): ``parts`` of ``({column: values},
    rows)``, the values as the client sent them (str, bool, int, float, None)."""

    __slots__ = ("parts", "n")

    def __init__(self, parts: list[tuple[dict[str, list], int]]):
        self.parts = parts
        self.n = sum(n for _, n in parts)

    def __len__(self) -> int:
        return self.n


class EncodedBatch:
    """Rows checked against the contract (``columns``: feature -> numpy array of its coerced
    values: float64 for numbers and booleans (1.0/0.0), datetime64[ns], str or None) and encoded
    (``matrix``: float32, the network's input); ``unseen``: unknown categories per column."""

    __slots__ = ("columns", "matrix", "unseen", "contract")

    def __init__(
        self, columns: dict[str, np.ndarray], matrix: np.ndarray, unseen: dict[str, int], contract: DataContract
    ):
        self.columns = columns
        self.matrix = matrix
        self.unseen = unseen
        self.contract = contract

    def __len__(self) -> int:
        return self.matrix.shape[0]

    def __getitem__(self, index: np.ndarray) -> EncodedBatch:
        """The rows at integer positions ``index`` (the answered rows of a batch, for the log)."""
        columns = {name: values[index] for name, values in self.columns.items()}
        return EncodedBatch(columns, self.matrix[index], self.unseen, self.contract)

    @staticmethod
    def arrow_of(batches: list[EncodedBatch]) -> pa.Table:
        """The rows of batches of one contract, in order, as the prediction log stores them: one
        typed column per feature (numbers as double, booleans as bool, dates as timestamp[us],
        categories and text as string; gaps null). One table per written part, not per batch:
        a table per batch cost about 80 us each, more than concatenating the columns."""
        return pa.table(
            {
                c.name: _arrow_column(np.concatenate([b.columns[c.name] for b in batches]), c.type)
                for c in batches[0].contract.columns
            }
        )


def _arrow_column(values: np.ndarray, kind: FeatureType) -> pa.Array:
    # check_columns' types: numeric and boolean float64 (boolean 1.0/0.0), datetime64[ns], str objects
    if kind == FeatureType.numeric:
        return pa.array(values.astype(np.float64, copy=False), pa.float64(), from_pandas=True)
    if kind == FeatureType.boolean:
        v = values.astype(np.float64, copy=False)
        return pa.array(v == 1.0, pa.bool_(), mask=np.isnan(v))
    if kind == FeatureType.datetime:
        return pa.array(values, pa.timestamp("ns"), from_pandas=True).cast(pa.timestamp("us"), safe=False)
    return pa.array(values, pa.string(), from_pandas=True)


def arrow_type(kind: FeatureType) -> pa.DataType:
    """The prediction log's type of a raw column of this type (:meth:`EncodedBatch.arrow_of`)."""
    return {
        FeatureType.numeric: pa.float64(),
        FeatureType.boolean: pa.bool_(),
        FeatureType.datetime: pa.timestamp("us"),
    }.get(kind, pa.string())


class RawRows:
    """The ``inputs`` decoder of a model with a data contract (see the module docstring)."""

    def __init__(self, contract: DataContract, transform: FeatureTransform, outputs: tuple[str, ...]):
        self.contract = contract
        self.transform = transform
        self.features = contract.features
        self.outputs = outputs  # the V2 outputs a request may ask for
        self.width = len(transform.output_names)
        self._positions = {f: i for i, f in enumerate(self.features)}
        self.all_numeric = all(c.type == FeatureType.numeric for c in contract.columns)

    # --- per request: the wire format -> column lists

    def from_invocations(self, body: bytes, content_type: str, max_rows: int) -> RawBatch:
        if content_type.startswith("text/csv"):
            return self._batch(*_csv_columns(body, max_rows), "CSV body")
        req = protocol.loads(body)
        if not isinstance(req, dict):
            raise RequestError(
                400, f"the body must be a JSON object with exactly one of {', '.join(protocol.MLFLOW_KEYS)}"
            )
        keys = [k for k in protocol.MLFLOW_KEYS if k in req]
        if len(keys) != 1:
            found = ", ".join(keys) if keys else "none of them"
            raise RequestError(
                400, f"the body must have exactly one of {', '.join(protocol.MLFLOW_KEYS)} (found {found})"
            )
        key = keys[0]
        value = req[key]
        if key == "dataframe_split":
            columns, n = self._from_split(value, max_rows)
        elif key == "dataframe_records" or (isinstance(value, list) and value and isinstance(value[0], dict)):
            columns, n = self._from_records(value, max_rows, key)
        elif isinstance(value, dict):
            columns, n = self._from_column_dict(value, max_rows, key)
        else:
            columns, n = self._from_positional(value, max_rows, key)
        return self._batch(columns, n, key)

    def _from_split(self, value: Any, max_rows: int) -> tuple[dict[str, list], int]:
        what = "dataframe_split"
        if not isinstance(value, dict) or not isinstance(value.get("data"), list):
            raise RequestError(400, f"{what} must be an object {{columns: [...], data: [[...], ...]}}")
        data = value["data"]
        _too_many(len(data), max_rows, what)
        names = value.get("columns")
        if names is None:
            return self._from_positional(data, max_rows, what)
        if not isinstance(names, list) or not all(isinstance(c, str) for c in names):
            raise RequestError(400, f"{what}.columns must be a list of column names")
        for i, row in enumerate(data):
            if not isinstance(row, list) or len(row) != len(names):
                got = f"{len(row)} values" if isinstance(row, list) else protocol.json_type(row)
                raise RequestError(422, f"{what}.data[{i}] has {got}, but {len(names)} columns are named")
        wanted = [(j, c) for j, c in enumerate(names) if c in self._positions]
        return {c: [row[j] for row in data] for j, c in wanted}, len(data)

    def _from_records(self, value: Any, max_rows: int, what: str) -> tuple[dict[str, list], int]:
        if not isinstance(value, list):
            raise RequestError(400, f"{what} must be a list of {{column: value}} objects")
        _too_many(len(value), max_rows, what)
        for i, rec in enumerate(value):
            if not isinstance(rec, dict):
                raise RequestError(400, f"{what}[{i}] must be an object {{column: value}}")
        # a column absent from every record is missing (the contract names it); absent from some: null
        present = [f for f in self.features if any(f in rec for rec in value)]
        return {f: [rec.get(f) for rec in value] for f in present}, len(value)

    def _from_column_dict(self, value: dict, max_rows: int, what: str) -> tuple[dict[str, list], int]:
        columns = {}
        for f in self.features:
            if f in value:
                col = value[f]
                if not isinstance(col, list):
                    raise RequestError(422, f"{what}.{f} must be a list of values (one per row)")
                columns[f] = col
        lengths = {len(c) for c in columns.values()}
        if len(lengths) > 1:
            raise RequestError(422, f"{what}: columns have different lengths")
        n = lengths.pop() if lengths else 0
        _too_many(n, max_rows, what)
        return columns, n

    def _from_positional(self, value: Any, max_rows: int, what: str) -> tuple[dict[str, list], int]:
        if not isinstance(value, list):
            raise RequestError(400, f"{what} must be a list of rows, a list of objects or an object of columns")
        _too_many(len(value), max_rows, what)
        k = len(self.features)
        for i, row in enumerate(value):
            if not isinstance(row, list) or len(row) != k:
                got = f"{len(row)} values" if isinstance(row, list) else protocol.json_type(row)
                raise RequestError(
                    422,
                    f"{what}[{i}] has {got}; a row without column names needs {k} values in this order: "
                    f"{', '.join(self.features[:10])}{' ...' if k > 10 else ''} (or send records)",
                )
        return {f: [row[j] for row in value] for j, f in enumerate(self.features)}, len(value)

    def from_v2(self, body: bytes, binary_header_length: str | None, max_rows: int) -> protocol.V2Request:
        json_part, binary = protocol.split_binary(body, binary_header_length)
        req = protocol.loads(json_part)
        if not isinstance(req, dict):
            raise RequestError(400, "the infer request must be a JSON object with 'inputs'")
        inputs = req.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise RequestError(400, "'inputs' must be a non-empty list of tensors {name, shape, datatype, data}")
        if len(inputs) == 1 and isinstance(inputs[0], dict) and inputs[0].get("name") not in self._positions:
            return self._from_single_tensor(body, binary_header_length, max_rows)
        columns: dict[str, list] = {}
        offset = 0
        for i, t in enumerate(inputs):
            if not isinstance(t, dict):
                raise RequestError(400, f"inputs[{i}] must be an object {{name, shape, datatype, data}}")
            name = t.get("name")
            if not isinstance(name, str):
                raise RequestError(400, f"inputs[{i}]: 'name' is required")
            values, offset = _v2_column(t, f"input '{name}'", binary, offset, max_rows)
            if name in self._positions:  # other names are left out, like extra columns elsewhere
                columns[name] = values
        lengths = {len(c) for c in columns.values()}
        if len(lengths) > 1:
            raise RequestError(422, "the column tensors have different lengths: send one value per row in each")
        n = lengths.pop() if lengths else 0
        outputs, binary_outputs = protocol.requested_outputs(req, self.outputs)
        rid = protocol.v2_request_id(req)
        return protocol.V2Request(rid, self._batch(columns, n, "inputs"), outputs, binary_outputs)

    def _from_single_tensor(self, body: bytes, binary_header_length: str | None, max_rows: int) -> protocol.V2Request:
        """One tensor ``[rows, features]``: the float path's request, for an all-numeric model."""
        if not self.all_numeric:
            types = ", ".join(f"{c.name} ({protocol.COLUMN_DATATYPES[str(c.type)]})" for c in self.contract.columns)
            raise RequestError(
                422,
                f"this model takes one input tensor per column, named after it: {types}; "
                "see GET /v2/models/{name} for the inputs",
            )
        req = protocol.parse_v2(body, binary_header_length, self.features, max_rows, self.outputs)
        x = req.x
        columns = {f: x[:, j].astype(np.float64).tolist() for j, f in enumerate(self.features)}
        req.x = self._batch(columns, x.shape[0], "inputs")
        return req

    def _batch(self, columns: dict[str, list], n: int, what: str) -> RawBatch:
        if n == 0:
            raise RequestError(422, f"{what}: no rows to predict")
        for name, values in columns.items():
            for i, v in enumerate(values):
                if not isinstance(v, _SCALARS):
                    raise RequestError(
                        422,
                        f"{what}: column '{name}' row {i} is {protocol.json_type(v)}; "
                        "a value must be a string, a number, a boolean or null",
                    )
        if len(columns) < len(self.features):
            # a missing column: the contract's own message names it and every column the model needs
            self.contract.check_frame(pd.DataFrame(columns, index=range(n)))
            raise RequestError(422, f"{what}: missing column(s); the model needs {', '.join(self.features)}")
        return RawBatch([(columns, n)])

    def concat(self, batches: list[RawBatch]) -> RawBatch:
        return batches[0] if len(batches) == 1 else RawBatch([p for b in batches for p in b.parts])

    # --- per forward pass: check against the contract, encode

    def prepare(self, batch: RawBatch) -> tuple[EncodedBatch, dict[int, BaseException]]:
        """The batch checked and encoded, and the requests (by position) that break the contract."""
        try:
            return self.encode(batch.parts), {}
        except DataValidationError as exc:
            if len(batch.parts) == 1:
                return self._empty(), {0: exc}
        refused: dict[int, BaseException] = {}
        good = []
        for i, part in enumerate(batch.parts):
            try:
                self.check([part])
            except DataValidationError as exc:
                refused[i] = exc
            else:
                good.append(part)
        return (self.encode(good) if good else self._empty()), refused

    def check(self, parts: list[tuple[dict[str, list], int]]) -> dict[str, np.ndarray]:
        """The rows' columns held to the contract (``ContractError`` naming column and type), as
        plain lists into ``contract.check_columns``: no DataFrame on the way."""
        if len(parts) == 1:
            columns, n = parts[0]
        else:
            columns = {f: [v for cols, _ in parts for v in cols[f]] for f in self.features}
            n = sum(rows for _, rows in parts)
        return self._finite(self.contract.check_columns(columns, n))

    def check_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``contract.check_frame``, plus what the float32 network cannot take (batch scoring)."""
        checked = self.contract.check_frame(frame)
        self._finite({c: checked[c].to_numpy() for c in checked.columns})
        return checked

    def _finite(self, checked: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """An infinite number (a CSV's ``inf``) or one beyond float32 is refused, naming it."""
        for spec in self.contract.columns:
            if spec.type != FeatureType.numeric:
                continue
            v = checked[spec.name]
            if len(v) <= ROW_WISE:  # a request's few rows: a Python loop beats four numpy calls
                bad = [i for i, x in enumerate(v.tolist()) if abs(x) > _F32_MAX]
            else:
                bad = np.flatnonzero(np.abs(v.astype(np.float64, copy=False)) > _F32_MAX).tolist()
            if bad:  # NaN (a gap the contract allowed) compares False
                raise ContractError(spec.name, "a finite number within float32 range", float(v[bad[0]]), bad[0])
        return checked

    def encode(self, parts: list[tuple[dict[str, list], int]]) -> EncodedBatch:
        checked = self.check(parts)
        n = len(next(iter(checked.values()))) if checked else sum(rows for _, rows in parts)
        unseen: dict[str, int] = {}
        matrix = self.transform.transform_checked(checked, n, unseen=unseen)
        return EncodedBatch(checked, np.ascontiguousarray(matrix, dtype=np.float32), unseen, self.contract)

    def encode_frame(self, checked: pd.DataFrame) -> EncodedBatch:
        unseen: dict[str, int] = {}
        matrix = self.transform.transform(checked, unseen=unseen)
        columns = {c: checked[c].to_numpy() for c in checked.columns}
        return EncodedBatch(columns, np.ascontiguousarray(matrix, dtype=np.float32), unseen, self.contract)

    def _empty(self) -> EncodedBatch:
        columns = {c.name: np.zeros(0, dtype=_EMPTY_DTYPES.get(c.type, object)) for c in self.contract.columns}
        return EncodedBatch(columns, np.zeros((0, self.width), dtype=np.float32), {}, self.contract)

    def warmup_batch(self) -> EncodedBatch:
        """A row of the contract's train examples through the whole path (the first check and
        encoding are slower); zeros for the network if the examples do not pass."""
        row = {c.name: [c.example] for c in self.contract.columns}
        try:
            return self.encode([(row, 1)])
        except Exception:  # noqa: BLE001 (an example may not round-trip; the forward pass still warms)
            empty = self._empty()
            return EncodedBatch(empty.columns, np.zeros((1, self.width), dtype=np.float32), {}, self.contract)


def _too_many(n: int, max_rows: int, what: str) -> None:
    if n > max_rows:
        raise RequestError(413, f"{what}: too many rows ({n}); at most {max_rows} per request: split it")


def _csv_columns(body: bytes, max_rows: int) -> tuple[dict[str, list], int]:
    """A CSV body with a header: every value a string, an empty field a null."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError(400, "CSV body is not UTF-8") from None
    try:
        # newline="": the csv module itself splits rows (CRLF, LF, a bare CR) and reads quoted newlines
        rows = [r for r in csv.reader(io.StringIO(text, newline="")) if r]
    except csv.Error as exc:  # a field over the csv module's size limit, a NUL byte, a stray quote
        raise RequestError(400, f"CSV body: malformed CSV ({exc})") from None
    if len(rows) < 2:
        raise RequestError(422, "CSV body needs a header row and at least one data row")
    header = [c.strip() for c in rows[0]]
    data = rows[1:]
    _too_many(len(data), max_rows, "CSV body")
    for i, r in enumerate(data):
        if len(r) != len(header):
            raise RequestError(422, f"CSV body: row {i} has {len(r)} fields, the header has {len(header)}")
    return {c: [r[j] if r[j] != "" else None for r in data] for j, c in enumerate(header)}, len(data)


def _flatten(data: Any, what: str, depth: int = 0) -> list:
    """A tensor's JSON data, flat (row-major): ``[v, ...]`` or ``[[v], ...]``."""
    if not isinstance(data, list):
        raise RequestError(422, f"{what}: 'data' must be a list")
    if depth >= 4:
        raise RequestError(422, f"{what}: 'data' is nested deeper than its shape allows")
    if not any(isinstance(v, list) for v in data):
        return data
    out = []
    for v in data:
        out.extend(_flatten(v, what, depth + 1) if isinstance(v, list) else [v])
    return out


def _v2_column(t: dict, what: str, binary: bytes, offset: int, max_rows: int) -> tuple[list, int]:
    """One per-column tensor's values (a list, one per row) and the next binary offset."""
    shape = protocol.tensor_shape(t.get("shape"), what, max_rows)
    size = math.prod(shape)
    if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
        raise RequestError(422, f"{what}: a column tensor has shape [rows] or [rows, 1], got {shape}")
    if size > max_rows:
        raise RequestError(413, f"{what}: too many rows ({size}); at most {max_rows} per request: split it")
    datatype = t.get("datatype")
    if not isinstance(datatype, str) or datatype not in _V2_DATATYPES:
        raise RequestError(
            422, f"{what}: wrong datatype {shown(datatype)}: expected BYTES, BOOL, FP32, FP64, INT64, ..."
        )
    params = t.get("parameters") or {}
    if not isinstance(params, dict):
        raise RequestError(400, f"{what}: 'parameters' must be an object")
    if "binary_data_size" in params:
        nbytes = params["binary_data_size"]
        if not isinstance(nbytes, int) or isinstance(nbytes, bool) or nbytes < 0 or offset + nbytes > len(binary):
            raise RequestError(
                400, f"{what}: binary_data_size {shown(nbytes)} does not fit the binary part of the body"
            )
        blob = binary[offset : offset + nbytes]
        values = _binary_bytes(blob, size, what) if datatype == "BYTES" else _binary_numbers(blob, datatype, size, what)
        return values, offset + nbytes
    if "data" not in t:
        raise RequestError(400, f"{what}: 'data' is required (or the binary tensor extension)")
    values = _flatten(t["data"], what)
    if len(values) != size:
        raise RequestError(422, f"{what}: {len(values)} values do not fill shape {shape}")
    return values, offset


def _binary_numbers(blob: bytes, datatype: str, size: int, what: str) -> list:
    dtype = np.dtype(protocol.NUMERIC_DATATYPES[datatype])
    if len(blob) != size * dtype.itemsize:
        raise RequestError(422, f"{what}: binary_data_size {len(blob)} does not match {size} values of {datatype}")
    arr = np.frombuffer(blob, dtype=dtype, count=size)
    if dtype.kind == "f":  # NaN: a gap (binary tensors have no null)
        return [None if math.isnan(v) else v for v in arr.astype(np.float64).tolist()]
    return arr.tolist()


def _binary_bytes(blob: bytes, size: int, what: str) -> list:
    """BYTES elements of the binary extension: each a 4-byte little-endian length, then the bytes."""
    out, pos = [], 0
    for _ in range(size):
        if pos + 4 > len(blob):
            raise RequestError(422, f"{what}: the BYTES data ends before its {size} elements")
        k = int.from_bytes(blob[pos : pos + 4], "little")
        pos += 4
        if pos + k > len(blob):
            raise RequestError(422, f"{what}: a BYTES element of {k} bytes runs past the data")
        try:
            out.append(blob[pos : pos + k].decode("utf-8"))
        except UnicodeDecodeError:
            raise RequestError(400, f"{what}: a BYTES element is not UTF-8") from None
        pos += k
    if pos != len(blob):
        raise RequestError(422, f"{what}: {len(blob) - pos} bytes left after {size} BYTES elements")
    return out
