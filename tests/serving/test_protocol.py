"""Open Inference Protocol and MLflow /invocations against a real server, checked against the model offline."""

from __future__ import annotations

import time

import httpx
import numpy as np
import orjson
import pyarrow.compute as pc
import pytest
import tritonclient.http as triton

FEATURES = ["a", "b", "c", "d"]

ROWS = np.array([[0.1, -1.0, 2.5, 3.0], [5.0, 6.0, -7.0, 8.0], [0.0, 0.0, 0.0, 0.0]], dtype=np.float32)


@pytest.fixture(scope="module")
def client(server):
    c = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    yield c
    c.close()


@pytest.mark.parametrize("binary", [True, False])
def test_triton_client_infer_matches_offline(client, predictor, binary):
    inp = triton.InferInput("input", list(ROWS.shape), "FP32")
    inp.set_data_from_numpy(ROWS, binary_data=binary)
    outs = [
        triton.InferRequestedOutput("label", binary_data=binary),
        triton.InferRequestedOutput("probabilities", binary_data=binary),
    ]
    result = client.infer("model", [inp], outputs=outs, request_id="req-1")
    np.testing.assert_allclose(result.as_numpy("probabilities"), predictor.predict_proba(ROWS), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(result.as_numpy("label"), predictor.predict(ROWS))
    response = result.get_response()
    assert response["model_version"] == "local" and response["model_name"] == "model"
    assert response["id"] == "req-1"


def test_triton_client_health_and_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("model")
    meta = client.get_model_metadata("model")
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    assert {o["name"] for o in meta["outputs"]} == {"label", "probabilities"}
    assert meta["parameters"]["features"] == FEATURES
    assert client.get_server_metadata()["name"] == "aiinfra"


def test_v2_per_feature_tensors_and_versioned_route(server, predictor):
    # one tensor per feature, in another order than the model's
    body = {
        "inputs": [
            {"name": f, "shape": [3], "datatype": "FP64", "data": ROWS[:, FEATURES.index(f)].tolist()}
            for f in reversed(FEATURES)
        ]
    }
    r = httpx.post(f"{server.url}/v2/models/model/versions/local/infer", json=body)
    assert r.status_code == 200, r.text
    assert r.headers["x-model-version"] == "local" and r.headers["x-request-id"]
    label = next(o for o in r.json()["outputs"] if o["name"] == "label")
    assert label["data"] == predictor.predict(ROWS).tolist()


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": {"columns": ["d", "c", "b", "a"], "data": ROWS[:, ::-1].tolist()}},
        {
            "dataframe_split": {
                "index": [0, 1, 2],
                "columns": FEATURES + ["extra"],
                "data": np.c_[ROWS, np.ones(3)].tolist(),
            }
        },
        {"dataframe_records": [dict(zip(FEATURES, map(float, r), strict=True)) for r in ROWS]},
        {"instances": ROWS.tolist()},
        {"inputs": ROWS.tolist()},
        {"inputs": {f: ROWS[:, i].tolist() for i, f in enumerate(FEATURES)}},
    ],
    ids=["split", "split-extra-column", "records", "instances", "inputs", "inputs-columns"],
)
def test_invocations_formats_match_offline(server, predictor, body):
    r = httpx.post(f"{server.url}/invocations", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["predictions"] == predictor.predict(ROWS).tolist()
    np.testing.assert_allclose(out["probabilities"], predictor.predict_proba(ROWS), rtol=1e-5, atol=1e-6)
    assert out["model_version"] == "local" == r.headers["x-model-version"]


def test_invocations_csv(server, predictor):
    csv = "d,c,b,a\n" + "\n".join(",".join(str(v) for v in r[::-1]) for r in ROWS.tolist())
    r = httpx.post(f"{server.url}/invocations", content=csv, headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == predictor.predict(ROWS).tolist()


INFER = "/v2/models/model/infer"


def v2(data, shape=None, datatype="FP32", name="input"):
    return orjson.dumps({"inputs": [{"name": name, "shape": shape or [1, 4], "datatype": datatype, "data": data}]})


@pytest.mark.parametrize(
    "path,body,status,words",
    [
        (INFER, b"{not json", 400, "malformed JSON"),
        (INFER, b"", 400, "empty request body"),
        (INFER, b"[1,2]", 400, "JSON object"),
        (INFER, b'{"inputs": []}', 400, "non-empty list"),
        (INFER, v2([1, 2, 3], [1, 3]), 422, "wrong shape [1, 3]"),
        (INFER, v2([1, 2, 3, 4, 5], [1, 4]), 422, "do not fill shape"),
        (INFER, v2(["a", "b", "c", "d"]), 422, "wrong dtype"),
        (INFER, v2([1, 2, 3, 4], datatype="BYTES"), 422, "wrong datatype"),
        (INFER, v2([1, None, 3, 4]), 422, "feature 'b' is null/NaN"),
        (INFER, b'{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,NaN,3,4]}]}', 400, "NaN"),
        (INFER, v2([1, 2, 3, 1e300], datatype="FP64"), 422, "overflows float32"),
        (INFER, v2([[1, 2, 3, 4], [1, 2]], [2, 4]), 422, "ragged"),
        (
            INFER,
            orjson.dumps({"inputs": [{"name": "input", "shape": "x", "datatype": "FP32", "data": []}]}),
            422,
            "shape",
        ),
        (
            INFER,
            orjson.dumps(
                {
                    "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}],
                    "outputs": [{"name": "nope"}],
                }
            ),
            400,
            "unknown output 'nope'",
        ),
        (INFER, v2([1] * 4 * 200, [200, 4]), 413, "too many rows (200 rows"),
        ("/v2/models/other/infer", v2([1, 2, 3, 4]), 404, "unknown model 'other'"),
        ("/invocations", b'{"instances": [[1, 2, 3, 4]], "inputs": [[1, 2, 3, 4]]}', 400, "exactly one of"),
        (
            "/invocations",
            b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}}',
            422,
            "missing column(s) c, d",
        ),
        ("/invocations", b'{"dataframe_records": [{"a": 1, "b": 2, "c": 3}]}', 422, "missing column 'd'"),
        ("/invocations", b'{"instances": [[1, 2, 3, 4, 5]]}', 422, "wrong shape [1, 5]"),
        ("/invocations", b'{"instances": [[1, true, "x", 4]]}', 422, "wrong dtype"),
        ("/invocations", b'{"instances": []}', 422, "no rows"),
    ],
)
def test_bad_requests_get_4xx_naming_the_problem(server, path, body, status, words):
    r = httpx.post(f"{server.url}{path}", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert words in r.json()["error"]
    assert r.headers["x-model-version"] == "local"


def test_oversize_body_is_413(server):
    big = b'{"instances": [' + b",".join([b"[1.0, 2.0, 3.0, 4.0]"] * 60_000) + b"]}"  # > 1 MiB
    assert len(big) > 1_048_576
    r = httpx.post(f"{server.url}/invocations", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "max_body_bytes" in r.json()["error"]


def test_unknown_route_and_method_are_json(server):
    r = httpx.get(f"{server.url}/nope")
    assert r.status_code == 404 and "no such endpoint" in r.json()["error"]
    r = httpx.get(f"{server.url}{INFER}")
    assert r.status_code == 405 and "not allowed" in r.json()["error"]


def test_openapi_and_docs(server):
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert spec["openapi"].startswith("3.") and "/v2/models/{name}/infer" in spec["paths"]
    assert spec["components"]["schemas"]["InvocationsRequest"]["properties"]["dataframe_split"]
    page = httpx.get(f"{server.url}/docs")
    assert page.status_code == 200 and "openapi.json" in page.text
    # the endpoint reference is rendered by the server: readable without the Swagger UI CDN
    assert "<code>/v2/models/{name}/infer</code>" in page.text and "<code>POST</code>" in page.text
    assert f"{server.url}/v2/models/" in page.text and '"shape": [1, 4]' in page.text


def test_metrics_in_base_units(server):
    for _ in range(3):
        httpx.post(f"{server.url}{INFER}", content=v2([1, 2, 3, 4]))
    httpx.post(f"{server.url}{INFER}", content=b"{")
    text = httpx.get(f"{server.url}/metrics").text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    assert samples['aiinfra_http_requests_total{method="POST",route="/v2/models/{name}/infer",status="200"}'] >= 3
    assert samples['aiinfra_http_requests_total{method="POST",route="/v2/models/{name}/infer",status="400"}'] >= 1
    assert samples['aiinfra_http_request_duration_seconds_count{route="/v2/models/{name}/infer"}'] >= 4
    assert samples["aiinfra_batch_size_rows_count"] >= 3 and samples["aiinfra_inference_duration_seconds_count"] >= 3
    assert samples["aiinfra_queue_rows"] == 0
    assert any(k.startswith("aiinfra_model_info{") and 'version="local"' in k for k in samples)
    assert any(k.startswith("aiinfra_predictions_total{") for k in samples)


def test_prediction_log_rows_match_requests(server, predictor):
    from aiinfra.serving.predlog import read_predictions

    r = httpx.post(
        f"{server.url}{INFER}",
        content=orjson.dumps(
            {
                "id": "logged-1",
                "inputs": [{"name": "input", "shape": [3, 4], "datatype": "FP32", "data": ROWS.tolist()}],
            }
        ),
    )
    assert r.status_code == 200
    deadline = time.monotonic() + 10
    rows = None
    while time.monotonic() < deadline:
        table = read_predictions(server.log_dir)
        if table.num_rows and "request_id" in table.column_names:
            rows = table.filter(pc.equal(table["request_id"], "logged-1"))
            if rows.num_rows == 3:
                break
        time.sleep(0.2)
    assert rows is not None and rows.num_rows == 3
    assert str(rows.schema.field("timestamp").type) == "timestamp[us, tz=UTC]"
    got = rows.to_pydict()
    np.testing.assert_allclose(np.array([got[f] for f in FEATURES]).T, ROWS)
    assert got["prediction"] == predictor.predict(ROWS).tolist()
    np.testing.assert_allclose(got["score"], predictor.predict_proba(ROWS).max(1), rtol=1e-5)
    assert set(got["model_version"]) == {"local"} and set(got["model_name"]) == {"model"}
    parts = list(server.log_dir.glob("date=*/hour=*/part-*.parquet"))
    assert parts, "hive-partitioned part files"
