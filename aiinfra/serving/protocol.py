"""Request bodies to a float32 matrix, predictions to response bodies. No pandas on this path.

Two wire formats:

* Open Inference Protocol (KServe V2) ``/v2/models/{name}/infer``: JSON tensors, plus the binary
  tensor extension that Triton's clients use by default (``Inference-Header-Content-Length``).
* MLflow ``/invocations``: exactly one of ``dataframe_split``, ``dataframe_records``, ``instances``
  or ``inputs``, as ``mlflow models serve`` accepts them.

Every problem raises :class:`RequestError` with the HTTP status and a message that names what is
wrong and how to fix it; nothing here may end in a 500.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import numpy as np
import orjson

# V2 datatypes accepted as numeric input, with their numpy dtype for the binary extension
NUMERIC_DATATYPES = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}
OUTPUT_LABEL = "label"
OUTPUT_PROBA = "probabilities"
OUTPUT_NAMES = (OUTPUT_LABEL, OUTPUT_PROBA)
OUTPUT_PREDICTIONS = "predictions"  # a regression model's one output: the predicted value (FP64)
REGRESSION_OUTPUTS = (OUTPUT_PREDICTIONS,)


def output_names(task: str) -> tuple[str, ...]:
    """The V2 outputs of a model of ``task``."""
    return REGRESSION_OUTPUTS if task == "regression" else OUTPUT_NAMES


INPUT_NAME = "input"
MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
BINARY_HEADER = "inference-header-content-length"


MAX_REQUEST_ID_CHARS = 128
#: the longest value shown back in an error message (a hostile body may be megabytes or deeply nested)
MAX_SHOWN_CHARS = 60


def request_id_problem(value: Any) -> str | None:
    """Why ``value`` is not a usable request id, or None. One rule for the V2 body's ``id``, the
    ``X-Request-ID`` header, the prediction log and a feedback row's ``request_id``: a string of 1 to
    ``MAX_REQUEST_ID_CHARS`` printable ASCII characters without spaces (what an HTTP header carries
    unchanged), so what a client sent is exactly what it gets back and what feedback joins on."""
    if not isinstance(value, str):
        return f"must be a string, got {json_type(value)}"
    if not value:
        return "must not be empty"
    if len(value) > MAX_REQUEST_ID_CHARS:
        return f"is {len(value)} characters long; at most {MAX_REQUEST_ID_CHARS}"
    if not (value.isascii() and value.isprintable()) or " " in value:
        return "may hold only printable ASCII characters without spaces"
    return None


def usable_request_id(value: Any) -> bool:
    """``value`` follows the request-id rule (:func:`request_id_problem`)."""
    return request_id_problem(value) is None


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def shown(value: Any) -> str:
    """A short, safe rendering of a client's value inside an error message."""
    if isinstance(value, (list, dict)):
        return json_type(value)  # repr() of a deeply nested value would hit the recursion limit
    text = repr(value)
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 3] + "..."


class RequestError(Exception):
    """A client error: HTTP status plus a message naming the problem."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def loads(body: bytes) -> Any:
    if not body:
        raise RequestError(400, "empty request body: send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        hint = ""
        if b"NaN" in body or b"Infinity" in body:
            hint = " (NaN and Infinity are not JSON; missing values are not accepted either)"
        raise RequestError(400, f"malformed JSON: {exc}{hint}") from None


def _features_hint(features: list[str]) -> str:
    shown = ", ".join(features[:8]) + (", ..." if len(features) > 8 else "")
    return f"{len(features)} features in this order: {shown}"


def to_matrix(data: Any, what: str) -> np.ndarray:
    """Nested JSON numbers -> float64 array; strings, ragged rows and nulls are named."""
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError):
        raise RequestError(422, f"{what}: rows have different lengths (ragged nested lists)") from None
    except OverflowError:  # an integer beyond 64 bits
        raise RequestError(422, f"{what}: a number is too large; the model takes float32 inputs") from None
    except RecursionError:
        raise RequestError(422, f"{what}: values are nested too deeply; send rows of numbers") from None
    kind = arr.dtype.kind
    if kind in "fiub":
        return arr.astype(np.float64, copy=False)
    if kind in "US":
        raise RequestError(422, f"{what}: wrong dtype: got strings, expected numbers")
    if kind == "O":
        try:
            arr = arr.astype(np.float64)
        except (ValueError, TypeError, OverflowError, RecursionError):
            raise RequestError(422, f"{what}: wrong dtype or ragged rows: every value must be a number") from None
        return arr
    raise RequestError(422, f"{what}: wrong dtype {arr.dtype}, expected numbers")


def check_matrix(x: np.ndarray, features: list[str], max_rows: int, what: str) -> np.ndarray:
    """Shape, row count and finiteness; returns C-contiguous float32."""
    n = len(features)
    if x.size == 0:
        raise RequestError(422, f"{what}: no rows to predict")
    if x.ndim == 1 and x.shape[0] == n and n > 1:
        x = x.reshape(1, n)  # a single row sent flat
    if x.ndim != 2 or x.shape[1] != n:
        raise RequestError(
            422, f"{what}: wrong shape {list(x.shape)}: expected [rows, {n}] ({_features_hint(features)})"
        )
    if x.shape[0] == 0:
        raise RequestError(422, f"{what}: no rows to predict")
    if x.shape[0] > max_rows:
        raise RequestError(413, f"{what}: too many rows ({x.shape[0]}); at most {max_rows} per request: split it")
    if not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        raise RequestError(
            422,
            f"{what}: row {int(bad[0])}, feature '{features[int(bad[1])]}' is null/NaN/infinite; "
            "every value must be a finite number",
        )
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x32).all():
        raise RequestError(422, f"{what}: a value overflows float32; the model takes float32 inputs")
    return x32


# --------------------------------------------------------------------------------------------
# Open Inference Protocol (KServe V2)


class V2Request:
    __slots__ = ("id", "x", "outputs", "binary_outputs")

    def __init__(self, id: str | None, x: np.ndarray, outputs: list[str], binary_outputs: set[str]):
        self.id = id
        self.x = x
        self.outputs = outputs
        self.binary_outputs = binary_outputs


def split_binary(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    try:
        n = int(header_length)
    except ValueError:
        raise RequestError(400, f"Inference-Header-Content-Length must be an integer, got '{header_length}'") from None
    if n < 0 or n > len(body):
        raise RequestError(400, f"Inference-Header-Content-Length {n} is outside the body ({len(body)} bytes)")
    return body[:n], body[n:]


def tensor_shape(value: Any, what: str, max_values: int) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value):
        raise RequestError(422, f"{what}: 'shape' must be a list of non-negative integers")
    if not 1 <= len(value) <= 4:
        raise RequestError(422, f"{what}: 'shape' must have 1 to 4 dimensions ([rows, features]), got {len(value)}")
    # each dimension on its own: [0, 10**30] has 0 values but no array can have that shape
    if any(d > max_values for d in value):
        raise RequestError(
            413, f"{what}: 'shape' {value} has a dimension over {max_values} (server.max_rows x features): split it"
        )
    return value


def parse_v2(
    body: bytes, header_length: str | None, features: list[str], max_rows: int, output_names: tuple = OUTPUT_NAMES
) -> V2Request:
    json_part, binary = split_binary(body, header_length)
    req = loads(json_part)
    if not isinstance(req, dict):
        raise RequestError(400, "the infer request must be a JSON object with 'inputs'")
    inputs = req.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError(400, "'inputs' must be a non-empty list of tensors {name, shape, datatype, data}")
    offset = 0
    tensors: dict[str, np.ndarray] = {}
    for i, t in enumerate(inputs):
        if not isinstance(t, dict):
            raise RequestError(400, f"inputs[{i}] must be an object {{name, shape, datatype, data}}")
        name = t.get("name")
        what = f"input '{name}'" if isinstance(name, str) else f"inputs[{i}]"
        if not isinstance(name, str):
            raise RequestError(400, f"{what}: 'name' is required")
        max_values = max_rows * max(1, len(features))
        shape = tensor_shape(t.get("shape"), what, max_values)
        datatype = t.get("datatype")
        if not isinstance(datatype, str) or datatype not in NUMERIC_DATATYPES:
            raise RequestError(
                422, f"{what}: wrong datatype {shown(datatype)}: expected one of FP32, FP64, INT32, INT64, ..."
            )
        params = t.get("parameters") or {}
        if not isinstance(params, dict):
            raise RequestError(400, f"{what}: 'parameters' must be an object")
        size = math.prod(shape)
        if size > max_values:
            raise RequestError(
                413,
                f"{what}: too many rows ({size // max(1, len(features))} rows of {len(features)} "
                f"features); at most {max_rows} per request: split it",
            )
        if "binary_data_size" in params:
            nbytes = params["binary_data_size"]
            dtype = np.dtype(NUMERIC_DATATYPES[datatype])
            if not isinstance(nbytes, int) or isinstance(nbytes, bool) or nbytes < 0 or offset + nbytes > len(binary):
                raise RequestError(
                    400, f"{what}: binary_data_size {shown(nbytes)} does not fit the binary part of the body"
                )
            if nbytes != size * dtype.itemsize:
                raise RequestError(422, f"{what}: binary_data_size {nbytes} does not match shape {shape} of {datatype}")
            arr = np.frombuffer(binary, dtype=dtype, count=size, offset=offset).astype(np.float64)
            offset += nbytes
        else:
            if "data" not in t:
                raise RequestError(400, f"{what}: 'data' is required (or the binary tensor extension)")
            arr = to_matrix(t["data"], what)
            if arr.size != size:
                raise RequestError(422, f"{what}: {arr.size} values do not fill shape {shape}")
        tensors[name] = arr.reshape(shape)
    x = _assemble_v2(tensors, features)
    x = check_matrix(x, features, max_rows, "inputs")
    outputs, binary_outputs = requested_outputs(req, output_names)
    return V2Request(v2_request_id(req), x, outputs, binary_outputs)


def v2_request_id(req: dict) -> str | None:
    """The body's ``id`` (None when absent); a RequestError when it breaks the request-id rule."""
    rid = req.get("id")
    if rid is not None:
        problem = request_id_problem(rid)
        if problem:
            raise RequestError(400, f"'id' {problem}")
    return rid


def _assemble_v2(tensors: dict[str, np.ndarray], features: list[str]) -> np.ndarray:
    if len(tensors) == 1:
        (arr,) = tensors.values()
        name = next(iter(tensors))
        if len(features) == 1 and name == features[0]:
            return arr.reshape(-1, 1)
        return arr
    # one tensor per feature, named after it (as a DataFrame-like client would send)
    missing = [f for f in features if f not in tensors]
    if missing:
        raise RequestError(
            422,
            f"with several input tensors, each must be named after a feature; missing: "
            f"{', '.join(missing[:10])}. "
            f"Or send one tensor 'input' of shape [rows, {len(features)}]",
        )
    cols = [tensors[f].reshape(-1) for f in features]
    if len({c.shape[0] for c in cols}) != 1:
        raise RequestError(422, "feature tensors have different lengths")
    return np.stack(cols, axis=1)


def requested_outputs(req: dict, output_names: tuple = OUTPUT_NAMES) -> tuple[list[str], set[str]]:
    """The outputs a V2 request asks for (default: all of ``output_names``) and those to send binary."""
    params = req.get("parameters") or {}
    all_binary = isinstance(params, dict) and params.get("binary_data_output") is True
    outs = req.get("outputs")
    if outs is None:
        names = list(output_names)
        return names, set(names) if all_binary else set()
    if not isinstance(outs, list):
        raise RequestError(400, "'outputs' must be a list of {name}")
    names, binary = [], set()
    for o in outs:
        name = o.get("name") if isinstance(o, dict) else None
        if not isinstance(name, str) or name not in output_names:
            raise RequestError(
                400, f"outputs: unknown output {shown(name)}: this model has outputs {', '.join(output_names)}"
            )
        names.append(name)
        p = o.get("parameters") or {}
        if all_binary or (isinstance(p, dict) and p.get("binary_data") is True):
            binary.add(name)
    return names, binary


def _label_tensor(labels: np.ndarray, datatype: str) -> tuple[Any, bytes]:
    """(JSON data, binary bytes) of the label output."""
    if datatype == "BYTES":
        items = [str(v).encode() for v in labels.tolist()]
        blob = b"".join(len(b).to_bytes(4, "little") + b for b in items)
        return [b.decode() for b in items], blob
    np_dtype = {"INT64": np.int64, "FP64": np.float64, "BOOL": np.bool_}[datatype]
    arr = labels.astype(np_dtype, copy=False)
    return arr, arr.tobytes()


def v2_response(
    req: V2Request, model: Any, request_id: str, proba: np.ndarray, labels: np.ndarray | None
) -> tuple[bytes, dict[str, str]]:
    """Body and extra headers (binary extension) of an infer response. A regression model
    (``labels`` None): ``proba`` holds the predicted values, sent as the FP64 output ``predictions``."""
    n = proba.shape[0]
    outputs, blobs = [], []
    for name in req.outputs:
        if name == OUTPUT_PREDICTIONS:
            v64 = np.ascontiguousarray(proba, dtype=np.float64)
            data, blob = v64, v64.tobytes()
            tensor = {"name": name, "datatype": "FP64", "shape": [n]}
        elif name == OUTPUT_LABEL:
            dt = model.label_datatype
            data, blob = _label_tensor(labels, dt)
            tensor: dict[str, Any] = {"name": name, "datatype": dt, "shape": [n]}
        else:
            p32 = np.ascontiguousarray(proba, dtype=np.float32)
            data, blob = p32.reshape(-1), p32.tobytes()
            tensor = {"name": name, "datatype": "FP32", "shape": [n, int(proba.shape[1])]}
        if name in req.binary_outputs:
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = data
        outputs.append(tensor)
    body = {"model_name": model.name, "model_version": model.version, "id": req.id or request_id, "outputs": outputs}
    head = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return head, {}
    return head + b"".join(blobs), {"Inference-Header-Content-Length": str(len(head))}


#: the V2 datatype a client sends for a raw column of each contract type (aiinfra.data.schema.FeatureType)
COLUMN_DATATYPES = {"numeric": "FP64", "categorical": "BYTES", "boolean": "BOOL", "datetime": "BYTES", "text": "BYTES"}


def column_types(model: Any) -> dict[str, str] | None:
    """``{column: contract type}`` of a model whose inputs are not all numeric, else None (one FP32
    tensor describes the inputs, as before)."""
    contract = getattr(model, "contract", None)
    if contract is None:
        return None
    types = {c.name: str(c.type) for c in contract.columns}
    if all(t == "numeric" for t in types.values()):
        return None
    return types


def v2_metadata(model: Any) -> dict[str, Any]:
    types = column_types(model)
    if types is None:
        inputs = [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, model.n_features]}]
    else:  # one input per column, as KServe/Triton clients send a typed table
        inputs = [{"name": c, "datatype": COLUMN_DATATYPES.get(t, "BYTES"), "shape": [-1]} for c, t in types.items()]
    if getattr(model, "task", "") == "regression":
        outputs = [{"name": OUTPUT_PREDICTIONS, "datatype": "FP64", "shape": [-1]}]
    else:
        outputs = [
            {"name": OUTPUT_LABEL, "datatype": model.label_datatype, "shape": [-1]},
            {"name": OUTPUT_PROBA, "datatype": "FP32", "shape": [-1, len(model.classes)]},
        ]
    params: dict[str, Any] = {"features": model.features, "classes": model.classes.tolist(), "uri": model.uri}
    if getattr(model, "task", None):
        params["task"] = model.task
    if types is not None:
        params["column_types"] = types
    return {
        "name": model.name,
        "versions": [model.version],
        "platform": model.platform,
        "inputs": inputs,
        "outputs": outputs,
        "parameters": params,
    }


# --------------------------------------------------------------------------------------------
# MLflow scoring-server bodies (/invocations)


def parse_invocations(body: bytes, content_type: str, features: list[str], max_rows: int) -> np.ndarray:
    if content_type.startswith("text/csv"):
        return check_matrix(_csv_columns(body, features), features, max_rows, "CSV body")
    req = loads(body)
    if not isinstance(req, dict):
        raise RequestError(400, f"the body must be a JSON object with exactly one of {', '.join(MLFLOW_KEYS)}")
    keys = [k for k in MLFLOW_KEYS if k in req]
    if len(keys) != 1:
        found = ", ".join(keys) if keys else "none of them"
        raise RequestError(400, f"the body must have exactly one of {', '.join(MLFLOW_KEYS)} (found {found})")
    key = keys[0]
    value = req[key]
    if key == "dataframe_split":
        x = _from_split(value, features, max_rows)
    elif key == "dataframe_records":
        x = _from_records(value, features, max_rows, key)
    else:
        x = _from_tensor_like(value, features, max_rows, key)
    return check_matrix(x, features, max_rows, key)


def _too_many(n: int, max_rows: int, what: str) -> None:
    if n > max_rows:
        raise RequestError(413, f"{what}: too many rows ({n}); at most {max_rows} per request: split it")


def _from_split(value: Any, features: list[str], max_rows: int) -> np.ndarray:
    if not isinstance(value, dict) or "data" not in value:
        raise RequestError(400, "dataframe_split must be an object {columns: [...], data: [[...], ...]}")
    data = value["data"]
    if not isinstance(data, list):
        raise RequestError(400, "dataframe_split.data must be a list of rows")
    _too_many(len(data), max_rows, "dataframe_split")
    x = to_matrix(data, "dataframe_split.data")
    columns = value.get("columns")
    if columns is None:
        return x
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise RequestError(400, "dataframe_split.columns must be a list of column names")
    if x.ndim != 2 or x.shape[1] != len(columns):
        if x.size == 0:
            raise RequestError(422, "dataframe_split: no rows to predict")
        raise RequestError(
            422,
            f"dataframe_split: rows have {x.shape[-1] if x.ndim else 0} values but {len(columns)} columns are named",
        )
    return x[:, _column_index(columns, features, "dataframe_split")]


def _column_index(columns: list[str], features: list[str], what: str) -> list[int]:
    pos = {c: i for i, c in enumerate(columns)}
    missing = [f for f in features if f not in pos]
    if missing:
        raise RequestError(
            422,
            f"{what}: missing column(s) {', '.join(missing[:10])}"
            f"{' ...' if len(missing) > 10 else ''}; the model needs {_features_hint(features)}",
        )
    return [pos[f] for f in features]


def _from_records(value: Any, features: list[str], max_rows: int, what: str) -> np.ndarray:
    if not isinstance(value, list):
        raise RequestError(400, f"{what} must be a list of {{column: value}} objects")
    _too_many(len(value), max_rows, what)
    rows = []
    for i, rec in enumerate(value):
        if not isinstance(rec, dict):
            raise RequestError(400, f"{what}[{i}] must be an object {{column: value}}")
        try:
            rows.append([rec[f] for f in features])
        except KeyError as exc:
            raise RequestError(
                422, f"{what}[{i}]: missing column '{exc.args[0]}'; the model needs {_features_hint(features)}"
            ) from None
    if not rows:
        raise RequestError(422, f"{what}: no rows to predict")
    return to_matrix(rows, what)


def _from_tensor_like(value: Any, features: list[str], max_rows: int, what: str) -> np.ndarray:
    if isinstance(value, dict):  # column format {feature: [values]}
        missing = [f for f in features if f not in value]
        if missing:
            raise RequestError(
                422, f"{what}: missing column(s) {', '.join(missing[:10])}; the model needs {_features_hint(features)}"
            )
        cols = [to_matrix(value[f], f"{what}.{f}").reshape(-1) for f in features]
        if len({c.shape[0] for c in cols}) != 1:
            raise RequestError(422, f"{what}: columns have different lengths")
        _too_many(cols[0].shape[0], max_rows, what)
        return np.stack(cols, axis=1)
    if not isinstance(value, list):
        raise RequestError(400, f"{what} must be a list of rows, a list of objects or an object of columns")
    _too_many(len(value), max_rows, what)
    if value and isinstance(value[0], dict):
        return _from_records(value, features, max_rows, what)
    return to_matrix(value, what)


def _csv_columns(body: bytes, features: list[str]) -> np.ndarray:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError(400, "CSV body is not UTF-8") from None
    try:
        # newline="": the csv module itself splits rows (CRLF, LF, a bare CR) and reads quoted newlines
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:  # a field over the csv module's size limit, a NUL byte, a stray quote
        raise RequestError(400, f"CSV body: malformed CSV ({exc})") from None
    if len(rows) < 2:
        raise RequestError(422, "CSV body needs a header row and at least one data row")
    idx = _column_index([c.strip() for c in rows[0]], features, "CSV body")
    try:
        return np.array([[float(r[i]) for i in idx] for r in rows[1:] if r], dtype=np.float64)
    except (ValueError, IndexError) as exc:
        raise RequestError(422, f"CSV body: a value is not a number or a row is short ({exc})") from None


def invocations_response(model: Any, proba: np.ndarray, labels: np.ndarray | None) -> bytes:
    if labels is None:  # regression: the predicted values, no probabilities
        return orjson.dumps(
            {
                "predictions": np.ascontiguousarray(proba, dtype=np.float64),
                "model_name": model.name,
                "model_version": model.version,
            },
            option=orjson.OPT_SERIALIZE_NUMPY,
        )
    return orjson.dumps(
        {
            "predictions": labels if labels.dtype.kind in "iufb" else labels.tolist(),
            "probabilities": np.ascontiguousarray(proba, dtype=np.float32),
            "model_name": model.name,
            "model_version": model.version,
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
