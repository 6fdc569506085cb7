"""Raw rows on a real server: a model with a data contract (numbers with gaps, categories, booleans,
ISO dates, text) answers /invocations and V2 exactly like the offline Predictor; contract errors
are 400s naming the column and the expected type; unseen categories are counted; the prediction
log keeps the typed columns."""

from __future__ import annotations

import json
import re

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest

from fault_helpers import wait_for
from raw_helpers import COLUMNS, make_raw_model, records, request_rows
from serving_helpers import ServerProcess


@pytest.fixture(scope="module")
def raw_model_dir(tmp_path_factory):
    return make_raw_model(tmp_path_factory.mktemp("raw") / "model")


@pytest.fixture(scope="module")
def raw_predictor(raw_model_dir):
    from aiinfra.models.model_dir import Predictor

    return Predictor.load(raw_model_dir)


@pytest.fixture(scope="module")
def raw_server(serving_project, raw_model_dir):
    srv = ServerProcess(
        serving_project,
        [f"server.model_uri={raw_model_dir}", "server.log_flush_interval_s=0.2", "server.max_rows=100"],
        name="raw",
    ).start()
    yield srv
    assert srv.stop() == 0, srv.text()


def offline_proba(predictor, frame: pd.DataFrame) -> np.ndarray:
    """What the model predicts for these rows offline: the contract's check, the transform, the network."""
    return predictor.predict_proba(predictor.encode(predictor.contract.check_frame(frame)))


def post(srv, body, path="/invocations", **kw):
    return httpx.post(f"{srv.url}{path}", content=orjson.dumps(body) if not isinstance(body, bytes) else body, **kw)


def test_the_model_is_served_as_raw_rows(raw_predictor):
    # the precondition of every test here: not the float fast path
    assert raw_predictor.contract is not None and not raw_predictor.transform.is_identity
    types = {c.name: str(c.type) for c in raw_predictor.contract.columns}
    assert types == {
        "age": "numeric",
        "income": "numeric",
        "city": "categorical",
        "member": "boolean",
        "signup": "datetime",
        "note": "text",
    }


@pytest.mark.parametrize("shape", ["dataframe_records", "dataframe_split", "instances_columns", "csv"])
def test_invocations_equal_the_offline_predictor(raw_server, raw_predictor, shape):
    frame = request_rows(20)
    assert frame["income"].isna().any()  # gaps travel as nulls
    recs = records(frame)
    headers = {}
    if shape == "dataframe_records":
        body = orjson.dumps({"dataframe_records": recs})
    elif shape == "dataframe_split":
        cols = COLUMNS[::-1]  # matched by name
        body = orjson.dumps({"dataframe_split": {"columns": cols, "data": [[r[c] for c in cols] for r in recs]}})
    elif shape == "instances_columns":
        body = orjson.dumps({"instances": {c: [r[c] for r in recs] for c in COLUMNS}})
    else:
        lines = [",".join(COLUMNS)]
        lines += [",".join("" if r[c] is None else str(r[c]) for c in COLUMNS) for r in recs]
        body, headers = "\n".join(lines).encode(), {"Content-Type": "text/csv"}
    r = post(raw_server, body, headers=headers)
    assert r.status_code == 200, r.text
    out = r.json()
    expected = offline_proba(raw_predictor, frame)
    np.testing.assert_allclose(np.array(out["probabilities"]), expected, rtol=0, atol=1e-6)
    assert out["predictions"] == np.asarray(raw_predictor.classes)[expected.argmax(1)].tolist()


def v2_columns(frame: pd.DataFrame) -> list[dict]:
    """One named input per column, as KServe/Triton clients send a typed table."""
    datatypes = {"age": "FP64", "income": "FP64", "city": "BYTES", "member": "BOOL", "signup": "BYTES"}
    datatypes["note"] = "BYTES"
    recs = records(frame)
    return [
        {"name": c, "datatype": dt, "shape": [len(recs)], "data": [r[c] for r in recs]} for c, dt in datatypes.items()
    ]


def test_v2_per_column_inputs_with_bytes(raw_server, raw_predictor):
    frame = request_rows(12, seed=5)
    r = post(raw_server, {"id": "raw-1", "inputs": v2_columns(frame)}, "/v2/models/model/infer")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "raw-1"
    outs = {o["name"]: o for o in body["outputs"]}
    expected = offline_proba(raw_predictor, frame)
    assert outs["probabilities"]["shape"] == [12, 2]
    np.testing.assert_allclose(np.array(outs["probabilities"]["data"]).reshape(12, 2), expected, atol=1e-6)
    assert outs["label"]["data"] == np.asarray(raw_predictor.classes)[expected.argmax(1)].tolist()


def test_v2_binary_bytes_tensors(raw_server, raw_predictor):
    """The binary tensor extension (tritonclient's default): BYTES as 4-byte length-prefixed elements."""
    frame = request_rows(3, seed=7)
    frame["income"] = [40_000.0 if v is None else v for v in frame["income"]]  # binary FP64: no null
    recs = records(frame)
    inputs, blobs = [], []
    for c in COLUMNS:
        values = [r[c] for r in recs]
        if c in ("age", "income"):
            blob, dt = np.array(values, np.float64).tobytes(), "FP64"
        elif c == "member":
            blob, dt = np.array(values, np.bool_).tobytes(), "BOOL"
        else:
            blob = b"".join(len(v.encode()).to_bytes(4, "little") + v.encode() for v in values)
            dt = "BYTES"
        inputs.append({"name": c, "datatype": dt, "shape": [3], "parameters": {"binary_data_size": len(blob)}})
        blobs.append(blob)
    head = orjson.dumps({"inputs": inputs, "outputs": [{"name": "probabilities"}]})
    r = httpx.post(
        f"{raw_server.url}/v2/models/model/infer",
        content=head + b"".join(blobs),
        headers={"Inference-Header-Content-Length": str(len(head))},
    )
    assert r.status_code == 200, r.text
    (out,) = r.json()["outputs"]
    np.testing.assert_allclose(np.array(out["data"]).reshape(3, 2), offline_proba(raw_predictor, frame), atol=1e-6)


def test_metadata_and_openapi_describe_each_column(raw_server):
    meta = httpx.get(f"{raw_server.url}/v2/models/model").json()
    assert meta["inputs"] == [
        {"name": "age", "datatype": "FP64", "shape": [-1]},
        {"name": "income", "datatype": "FP64", "shape": [-1]},
        {"name": "city", "datatype": "BYTES", "shape": [-1]},
        {"name": "member", "datatype": "BOOL", "shape": [-1]},
        {"name": "signup", "datatype": "BYTES", "shape": [-1]},
        {"name": "note", "datatype": "BYTES", "shape": [-1]},
    ]
    assert meta["parameters"]["column_types"]["signup"] == "datetime"
    page = httpx.get(f"{raw_server.url}/docs").text  # its example: one input per column
    assert '"name": "city", "shape": [1], "datatype": "BYTES"' in page
    spec = httpx.get(f"{raw_server.url}/openapi.json").json()
    record = spec["components"]["schemas"]["InvocationsRequest"]["properties"]["dataframe_records"]["items"]
    assert record["properties"]["city"]["type"] == "string"
    assert record["properties"]["member"]["type"] == "boolean"
    assert record["properties"]["signup"]["format"] == "date-time"
    assert record["properties"]["income"]["nullable"] is True and "nullable" not in record["properties"]["age"]


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("age", "abc", "a number"),
        ("member", "maybe", "a boolean"),
        ("signup", "last tuesday", "an ISO 8601 date"),
        ("signup", 17, "an ISO 8601 date"),
    ],
)
def test_a_wrong_type_is_a_400_naming_column_and_type(raw_server, column, value, expected):
    recs = records(request_rows(3))
    recs[1][column] = value
    r = post(raw_server, {"dataframe_records": recs})
    assert r.status_code == 400, r.text
    message = r.json()["error"]
    assert f"'{column}'" in message and expected in message and "row 1" in message


def test_a_null_where_the_contract_forbids_it_is_a_400(raw_server):
    recs = records(request_rows(3))
    recs[2]["city"] = None
    r = post(raw_server, {"dataframe_records": recs})
    assert r.status_code == 400, r.text
    assert "'city'" in r.json()["error"] and "never missing" in r.json()["error"]
    # income had gaps in training: a null there is imputed
    recs = records(request_rows(3))
    recs[0]["income"] = None
    assert post(raw_server, {"dataframe_records": recs}).status_code == 200


def test_a_missing_column_is_a_400_naming_it(raw_server):
    recs = [{k: v for k, v in r.items() if k != "signup"} for r in records(request_rows(2))]
    r = post(raw_server, {"dataframe_records": recs})
    assert r.status_code == 400 and "'signup'" in r.json()["error"], r.text
    r = post(raw_server, {"inputs": v2_columns(request_rows(2))[:-1]}, "/v2/models/model/infer")  # no 'note'
    assert r.status_code == 400 and "'note'" in r.json()["error"], r.text


def unseen(url: str, column: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    m = re.search(rf'^aiinfra_unseen_category_total\{{column="{column}"\}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def test_an_unseen_category_is_answered_and_counted(raw_server, raw_predictor):
    before = unseen(raw_server.url, "city")
    frame = request_rows(4)
    frame.loc[[0, 2], "city"] = "Atlantis"  # never in training
    r = post(raw_server, {"dataframe_records": records(frame)})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(np.array(r.json()["probabilities"]), offline_proba(raw_predictor, frame), atol=1e-6)
    assert unseen(raw_server.url, "city") == before + 2


def test_the_prediction_log_keeps_the_typed_columns(raw_server):
    from aiinfra.serving.predlog import read_predictions

    frame = request_rows(5, seed=11)
    frame.loc[1, "income"] = None
    r = post(raw_server, {"dataframe_records": records(frame)}, headers={"X-Request-ID": "typed-log-1"})
    assert r.status_code == 200, r.text

    def logged():
        table = read_predictions(raw_server.log_dir)
        if table.num_rows == 0:
            return None
        rows = table.filter(table.column("request_id").to_numpy(zero_copy_only=False) == "typed-log-1")
        return rows if rows.num_rows == 5 else None

    rows = wait_for(logged)
    schema = rows.schema
    assert str(schema.field("city").type) == "string" and str(schema.field("member").type) == "bool"
    assert str(schema.field("signup").type).startswith("timestamp") and str(schema.field("age").type) == "double"
    got = rows.to_pydict()
    assert got["city"] == frame["city"].tolist() and got["member"] == frame["member"].tolist()
    assert got["income"][1] is None
    assert [d.strftime("%Y-%m-%d") for d in got["signup"]] == frame["signup"].tolist()
    assert all(isinstance(p, int) for p in got["prediction"]) and all(0 <= s <= 1 for s in got["score"])


def test_one_bad_request_in_a_batch_fails_alone(raw_model_dir, raw_predictor):
    """Requests that share a forward pass: the one breaking the contract gets its 400, the others
    their predictions (the batch is checked once, then request by request when it fails)."""
    import asyncio

    from aiinfra.errors import DataValidationError
    from aiinfra.serving.batcher import Batcher
    from aiinfra.serving.runtime import LoadedModel, raw_inputs

    model = LoadedModel(
        predictor=raw_predictor,
        name="m",
        version="1",
        uri="u",
        path=raw_model_dir,
        features=raw_predictor.features,
        classes=np.asarray(raw_predictor.classes),
        task=raw_predictor.task,
        contract=raw_predictor.contract,
        inputs=raw_inputs(raw_predictor),
    )
    good, bad = request_rows(3), records(request_rows(2))
    bad[1]["age"] = "old"

    def batch(recs):
        return model.inputs.from_invocations(orjson.dumps({"dataframe_records": recs}), "application/json", 100)

    passes: list[int] = []

    async def three_requests():
        batcher = Batcher(
            lambda: model, max_batch_size=64, max_wait_ms=0, max_queue_rows=64, on_batch=lambda n, s: passes.append(n)
        )
        results = await asyncio.gather(
            batcher.predict(batch(records(good)), model),
            batcher.predict(batch(bad), model),
            batcher.predict(batch(records(good)), model),
            return_exceptions=True,
        )
        await batcher.close()
        return results

    first, second, third = asyncio.run(three_requests())
    assert isinstance(second, DataValidationError) and "'age'" in str(second) and "row 1" in str(second)
    assert passes == [6]  # one forward pass for the two good requests
    expected = offline_proba(raw_predictor, good)
    np.testing.assert_allclose(first.proba, expected, atol=1e-6)
    np.testing.assert_allclose(third.proba, expected, atol=1e-6)


# --- generated bodies: whatever a client puts in a column, the answer is never a 5xx

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["", " ", "nan", "inf", "-inf", "1e400", "2024-02-30", "2024-01-01T25:00", "0001-01-01", "true"]),
    st.sampled_from(["Lyon", "Oslo", "Atlantis", "9999-12-31", "1970-01-01T00:00:00Z", "yes", "0", "1"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=1),
)
_ROWS = st.lists(
    st.fixed_dictionaries({}, optional={c: _VALUES for c in COLUMNS} | {"extra": _VALUES}), min_size=0, max_size=4
)
_DATATYPES = st.sampled_from(["BYTES", "BOOL", "FP32", "FP64", "INT64", "UINT8", "FP16", "STRING", None])


@given(rows=_ROWS, shape=st.sampled_from(["records", "split", "columns", "csv", "v2"]), datatype=_DATATYPES)
@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_generated_raw_bodies_never_get_a_5xx(raw_server, rows, shape, datatype):
    # the stdlib encoder: integers beyond 64 bits reach the server as a client would send them
    dumps = lambda value: json.dumps(value).encode()  # noqa: E731
    headers = {}
    if shape == "records":
        body = dumps({"dataframe_records": rows})
    elif shape == "split":
        data = [[r.get(c) for c in COLUMNS] for r in rows]
        body = dumps({"dataframe_split": {"columns": COLUMNS, "data": data}})
    elif shape == "columns":
        body = dumps({"instances": {c: [r.get(c) for r in rows] for c in COLUMNS if any(c in r for r in rows)}})
    elif shape == "csv":
        lines = [",".join(COLUMNS)] + [",".join(str(r.get(c, "")).replace(",", ";") for c in COLUMNS) for r in rows]
        body, headers = "\n".join(lines).encode(), {"Content-Type": "text/csv"}
    else:
        names = {c for r in rows for c in r}
        inputs = [
            {"name": c, "datatype": datatype, "shape": [len(rows)], "data": [r.get(c) for r in rows]}
            for c in sorted(names)
        ]
        body = dumps({"inputs": inputs})
    path = "/v2/models/model/infer" if shape == "v2" else "/invocations"
    r = httpx.post(f"{raw_server.url}{path}", content=body, headers=headers, timeout=30)
    assert r.status_code < 500, (r.status_code, r.text, body[:500])
    if r.status_code >= 400:
        assert r.json()["error"]  # one message naming the problem
