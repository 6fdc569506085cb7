"""A regression model with a data contract on a real server: the predicted value in every
response (V2 FP64 ``predictions``, /invocations ``predictions``), no probabilities, values equal to
the offline Predictor; the prediction log's ``prediction`` is the value; feedback takes numbers."""

from __future__ import annotations

import httpx
import numpy as np
import orjson
import pytest

from fault_helpers import wait_for
from raw_helpers import make_raw_model, records, request_rows
from serving_helpers import ServerProcess


@pytest.fixture(scope="module")
def reg_model_dir(tmp_path_factory):
    return make_raw_model(tmp_path_factory.mktemp("raw-regression") / "model", task="regression")


@pytest.fixture(scope="module")
def reg_predictor(reg_model_dir):
    from aiinfra.models.model_dir import Predictor

    return Predictor.load(reg_model_dir)


@pytest.fixture(scope="module")
def reg_server(serving_project, reg_model_dir):
    srv = ServerProcess(
        serving_project, [f"server.model_uri={reg_model_dir}", "server.log_flush_interval_s=0.2"], name="raw-reg"
    ).start()
    yield srv
    assert srv.stop() == 0, srv.text()


def offline_values(predictor, frame):
    return predictor.predict_values(predictor.encode(predictor.contract.check_frame(frame)))


def test_invocations_answer_the_values(reg_server, reg_predictor):
    assert reg_predictor.task == "regression"
    frame = request_rows(15, seed=3)
    r = httpx.post(f"{reg_server.url}/invocations", content=orjson.dumps({"dataframe_records": records(frame)}))
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"predictions", "model_name", "model_version"}  # no probabilities
    expected = offline_values(reg_predictor, frame)
    assert np.std(expected) > 0  # the values depend on the rows: a constant would prove nothing
    np.testing.assert_allclose(body["predictions"], expected, rtol=1e-6)


def test_v2_answers_an_fp64_predictions_output(reg_server, reg_predictor):
    frame = request_rows(4, seed=8)
    recs = records(frame)
    inputs = [
        {"name": c, "datatype": dt, "shape": [4], "data": [r[c] for r in recs]}
        for c, dt in [
            ("age", "FP64"),
            ("income", "FP64"),
            ("city", "BYTES"),
            ("member", "BOOL"),
            ("signup", "BYTES"),
            ("note", "BYTES"),
        ]
    ]
    r = httpx.post(f"{reg_server.url}/v2/models/model/infer", content=orjson.dumps({"inputs": inputs}))
    assert r.status_code == 200, r.text
    (out,) = r.json()["outputs"]
    assert out["name"] == "predictions" and out["datatype"] == "FP64" and out["shape"] == [4]
    np.testing.assert_allclose(out["data"], offline_values(reg_predictor, frame), rtol=1e-6)
    # a classifier's outputs do not exist here
    bad = httpx.post(
        f"{reg_server.url}/v2/models/model/infer",
        content=orjson.dumps({"inputs": inputs, "outputs": [{"name": "probabilities"}]}),
    )
    assert bad.status_code == 400 and "predictions" in bad.json()["error"]
    meta = httpx.get(f"{reg_server.url}/v2/models/model").json()
    assert meta["outputs"] == [{"name": "predictions", "datatype": "FP64", "shape": [-1]}]
    assert meta["parameters"]["task"] == "regression"


def test_the_log_holds_the_value_and_feedback_takes_numbers(reg_server, reg_predictor):
    from aiinfra.serving.predlog import read_predictions

    frame = request_rows(3, seed=9)
    r = httpx.post(
        f"{reg_server.url}/invocations",
        content=orjson.dumps({"dataframe_records": records(frame)}),
        headers={"X-Request-ID": "reg-log-1"},
    )
    assert r.status_code == 200, r.text

    def logged():
        table = read_predictions(reg_server.log_dir)
        if table.num_rows == 0:
            return None
        rows = table.filter(table.column("request_id").to_numpy(zero_copy_only=False) == "reg-log-1")
        return rows if rows.num_rows == 3 else None

    rows = wait_for(logged)
    assert str(rows.schema.field("prediction").type) == "double" and "score" not in rows.column_names
    np.testing.assert_allclose(rows.column("prediction").to_pylist(), offline_values(reg_predictor, frame), rtol=1e-6)
    ok = httpx.post(
        f"{reg_server.url}/v2/models/model/feedback",
        content=orjson.dumps({"labels": [{"request_id": "reg-log-1", "label": 12.5}]}),
    )
    assert ok.status_code == 200, ok.text
    bad = httpx.post(
        f"{reg_server.url}/v2/models/model/feedback",
        content=orjson.dumps({"labels": [{"request_id": "reg-log-1", "label": "high"}]}),
    )
    assert bad.status_code == 422 and "finite number" in bad.json()["error"]
