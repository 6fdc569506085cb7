"""No 5xx from any client input: bodies generated from each endpoint's grammar (Hypothesis), sent to a
real server on 127.0.0.1. Every answer is a 2xx, or a 4xx whose JSON error names what is wrong, and
the server still answers a valid request afterwards.

The generators mix valid structure with type confusion at every level (an object or a list where a
string or number belongs), extreme shapes (zero dimensions next to huge ones, products that
overflow 64 bits), deep nesting (past the recursion limit), binary-tensor headers that lie about
sizes, and CSV with huge fields, bare carriage returns, NUL bytes and stray quotes.
"""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FEATURES = ["a", "b", "c", "d"]
SETTINGS = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,  # a fixed sequence: the same cases on every run, no example database
    database=None,
    suppress_health_check=list(HealthCheck),
)

# --- JSON values of every type, for type confusion at any level
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
junk = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
numbers = st.one_of(st.integers(-(2**64), 2**64), st.floats(allow_nan=False, allow_infinity=False, width=64))
dims = st.one_of(st.integers(0, 8), st.sampled_from([0, 1, 4, 2**31, 2**63, 2**64 + 1, 10**30, -1]), junk)
rows = st.lists(st.lists(numbers | junk, min_size=0, max_size=5), max_size=5)
datatypes = st.one_of(st.sampled_from(["FP32", "FP64", "INT64", "BOOL", "UINT8", "FP16", "BYTES", "fp32"]), junk)
request_ids = st.one_of(
    st.text(max_size=140),
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=120, max_size=140),
    junk,
)


def maybe(strategy):
    """A key that is present with a generated value, present with junk, or absent."""
    return st.one_of(strategy, junk, st.just(...))


def dumps(value) -> bytes:
    return json.dumps(value).encode()  # the stdlib: integers beyond 64 bits are part of the test


def drop_missing(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not ...}


tensor = st.builds(
    lambda name, shape, datatype, data, params: drop_missing(
        {"name": name, "shape": shape, "datatype": datatype, "data": data, "parameters": params}
    ),
    maybe(st.sampled_from(["input", *FEATURES])),
    maybe(st.lists(dims, max_size=5)),
    maybe(datatypes),
    maybe(rows | st.lists(numbers, max_size=8)),
    maybe(st.fixed_dictionaries({}, optional={"binary_data_size": junk | st.integers(-5, 200)})),
)
v2_bodies = st.builds(
    lambda rid, inputs, outputs, params: drop_missing(
        {"id": rid, "inputs": inputs, "outputs": outputs, "parameters": params}
    ),
    maybe(request_ids),
    maybe(st.lists(tensor, max_size=4)),
    maybe(st.lists(st.fixed_dictionaries({}, optional={"name": junk, "parameters": junk}) | junk, max_size=3)),
    maybe(st.fixed_dictionaries({}, optional={"binary_data_output": junk})),
)


def nested(depth: int, inner: bytes = b"1") -> bytes:
    return b"[" * depth + inner + b"]" * depth


deep = st.integers(1, 3000)

# the words an error must use to say which part of the request is wrong
V2_FIELDS = (
    "inputs",
    "input",
    "shape",
    "datatype",
    "data",
    "'id'",
    "outputs",
    "output",
    "parameters",
    "binary_data_size",
    "Inference-Header-Content-Length",
    "JSON",
    "body",
    "name",
    "rows",
    "feature",
)
INVOCATION_FIELDS = (
    "dataframe_split",
    "dataframe_records",
    "instances",
    "inputs",
    "CSV",
    "JSON",
    "body",
    "column",
    "rows",
)
FEEDBACK_FIELDS = ("labels", "request_id", "label", "JSON", "body")


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c
    # the server still answers a valid request after everything it was sent
    ok = httpx.post(
        f"{server.url}/v2/models/model/infer",
        json={"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]},
    )
    assert ok.status_code == 200, ok.text


def check(r: httpx.Response, fields: tuple[str, ...]) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:500])
    if r.status_code >= 400:
        err = r.json()["error"]
        assert isinstance(err, str) and any(f in err for f in fields), err


@given(body=v2_bodies)
@SETTINGS
def test_v2_json_bodies(client, body):
    check(client.post("/v2/models/model/infer", content=dumps(body)), V2_FIELDS)


@given(body=v2_bodies, depth=deep, where=st.sampled_from(["data", "id", "datatype", "shape", "top"]))
@settings(SETTINGS, max_examples=60)
def test_v2_deep_nesting_anywhere(client, body, depth, where):
    text = dumps(body)
    if where == "top":
        raw = nested(depth, text)
    else:
        tensor_text = b'{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}'
        field = {"data": b'"data":', "id": b'"id":', "datatype": b'"datatype":', "shape": b'"shape":'}[where]
        raw = b'{"id":"x","inputs":[' + tensor_text.replace(field, field + nested(depth) + b',"_":') + b"]}"
    check(client.post("/v2/models/model/infer", content=raw), V2_FIELDS)


binary_tensor = st.builds(
    lambda shape, datatype, size: {
        "name": "input",
        "shape": shape,
        "datatype": datatype,
        "parameters": {"binary_data_size": size},
    },
    st.lists(dims, max_size=3),
    datatypes,
    junk | st.integers(-10, 10**6),
)


@given(
    tensors=st.lists(binary_tensor, min_size=1, max_size=3),
    blob=st.binary(max_size=256),
    header=st.one_of(st.integers(-10, 10**7).map(str), st.text(max_size=12), st.just(None), st.just("exact")),
)
@SETTINGS
def test_v2_binary_extension_with_lying_sizes(client, tensors, blob, header):
    head = dumps({"inputs": tensors})
    headers = {"Content-Type": "application/octet-stream"}
    if header == "exact":
        headers["Inference-Header-Content-Length"] = str(len(head))
    elif header is not None:
        headers["Inference-Header-Content-Length"] = header.encode("utf-8", "replace").decode("latin-1")
    try:
        r = client.post("/v2/models/model/infer", content=head + blob, headers=headers)
    except (httpx.LocalProtocolError, UnicodeEncodeError):  # a header httpx itself refuses to send
        return
    check(r, V2_FIELDS)


invocation_values = st.one_of(
    rows,
    st.lists(st.dictionaries(st.sampled_from([*FEATURES, "x"]), numbers | junk, max_size=6), max_size=4),
    st.dictionaries(st.sampled_from([*FEATURES, "x"]), st.lists(numbers | junk, max_size=4) | junk, max_size=6),
    st.fixed_dictionaries(
        {}, optional={"columns": st.lists(st.sampled_from([*FEATURES, "x"]), max_size=6) | junk, "data": rows | junk}
    ),
    junk,
)
invocation_bodies = st.one_of(
    st.dictionaries(
        st.sampled_from(["dataframe_split", "dataframe_records", "instances", "inputs", "params"]),
        invocation_values,
        max_size=3,
    ),
    junk,
)


@given(body=invocation_bodies)
@SETTINGS
def test_invocations_json_bodies(client, body):
    check(client.post("/invocations", content=dumps(body)), INVOCATION_FIELDS)


csv_field = st.one_of(
    st.sampled_from([*FEATURES, "1.5", "-2", "1e400", "nan", "", " ", '"', '""', "\r", "\n", "\x00", "x"]),
    st.text(max_size=10),
    st.integers(130_000, 200_000).map(lambda n: "9" * n),  # over the csv module's field limit
)
csv_bodies = st.lists(st.lists(csv_field, max_size=6), max_size=5).map(
    lambda table: "\n".join(",".join(row) for row in table)
)


@given(text=csv_bodies, header=st.booleans(), newline=st.sampled_from(["\n", "\r\n", "\r"]))
@settings(SETTINGS, max_examples=200)
def test_invocations_csv_bodies(client, text, header, newline):
    body = (",".join(FEATURES) + newline if header else "") + text.replace("\n", newline)
    r = client.post("/invocations", content=body.encode("utf-8", "surrogatepass"), headers={"Content-Type": "text/csv"})
    check(r, INVOCATION_FIELDS)


feedback_bodies = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "labels": st.lists(
                st.fixed_dictionaries({}, optional={"request_id": request_ids, "label": junk, "target": junk}) | junk,
                max_size=4,
            )
            | junk
        },
    ),
    junk,
)


@given(body=feedback_bodies, depth=st.one_of(st.just(0), deep))
@settings(SETTINGS, max_examples=200)
def test_feedback_bodies(client, body, depth):
    raw = dumps(body)
    if depth:
        raw = raw.replace(b'"label":', b'"label":' + nested(depth) + b',"_":', 1)
    check(client.post("/v2/models/model/feedback", content=raw), FEEDBACK_FIELDS)
