"""server=onnx speaks the built-in server's protocol, with the torch model's predictions."""

from __future__ import annotations

import json
import shutil

import httpx
import numpy as np
import pytest

from aiinfra.models.model_dir import Predictor
from conftest import Server


@pytest.fixture(scope="module")
def servers(tmp_path_factory, model_dir):
    from aiinfra.testing import make_project

    project = make_project(tmp_path_factory.mktemp("serve") / "p", git=False, dvc=False)
    served = tmp_path_factory.mktemp("served") / "model"
    shutil.copytree(model_dir, served)  # the onnx server exports model.onnx next to the weights
    onnx_server, http_server = Server(project, "onnx", served), Server(project, "http", served)
    try:
        yield onnx_server.wait(), http_server.wait(), served
    finally:
        onnx_server.stop()
        http_server.stop()


def _v2(rows):
    return {
        "inputs": [{"name": "input", "shape": list(rows.shape), "datatype": "FP32", "data": rows.reshape(-1).tolist()}]
    }


def test_v2_infer_equals_torch_and_builtin_server(servers, rows):
    onnx_server, http_server, served = servers
    assert (served / "model.onnx").is_file()
    x = rows[:64]
    got = httpx.post(f"{onnx_server.url}/v2/models/model/infer", json=_v2(x), timeout=30)
    ref = httpx.post(f"{http_server.url}/v2/models/model/infer", json=_v2(x), timeout=30)
    assert got.status_code == ref.status_code == 200, got.text
    body, ref_body = got.json(), ref.json()
    assert [(o["name"], o["datatype"], o["shape"]) for o in body["outputs"]] == [
        (o["name"], o["datatype"], o["shape"]) for o in ref_body["outputs"]
    ]
    assert {k for k in body if k != "id"} == {k for k in ref_body if k != "id"}
    out = {o["name"]: o for o in body["outputs"]}
    proba = np.asarray(out["probabilities"]["data"], dtype=np.float32).reshape(out["probabilities"]["shape"])
    np.testing.assert_allclose(proba, Predictor.load(served).predict_proba(x), atol=1e-5, rtol=0)
    assert out["label"]["data"] == {o["name"]: o for o in ref_body["outputs"]}["label"]["data"]
    assert got.headers["x-model-version"] == ref.headers["x-model-version"]


def test_invocations_and_health(servers, rows):
    onnx_server, http_server, served = servers
    features = json.loads((served / "model.json").read_text())["features"]
    payload = {"dataframe_split": {"columns": features, "data": rows[:5].tolist()}}
    got = httpx.post(f"{onnx_server.url}/invocations", json=payload, timeout=30)
    ref = httpx.post(f"{http_server.url}/invocations", json=payload, timeout=30)
    assert got.status_code == 200, got.text
    assert got.json()["predictions"] == ref.json()["predictions"]
    np.testing.assert_allclose(got.json()["probabilities"], ref.json()["probabilities"], atol=1e-5)
    for path in ("/v2/health/live", "/v2/health/ready", "/ping", "/v2/models/model"):
        assert httpx.get(onnx_server.url + path, timeout=10).status_code == 200, path


def test_bad_requests_get_the_same_clear_4xx(servers):
    onnx_server, http_server, _ = servers
    for body in (b"{not json", b'{"inputs": []}', b'{"instances": [[1, 2]]}'):
        path = "/invocations" if b"instances" in body else "/v2/models/model/infer"
        got = httpx.post(onnx_server.url + path, content=body, headers={"content-type": "application/json"})
        ref = httpx.post(http_server.url + path, content=body, headers={"content-type": "application/json"})
        assert 400 <= got.status_code < 500 and got.status_code == ref.status_code
        assert got.json() == ref.json()


def test_two_workers_share_one_metrics_directory(tmp_path_factory, model_dir, rows):
    """server.workers=2 on onnxruntime: any worker's /metrics counts the rows of both (the
    multiprocess directory is set up by the core server for every runtime)."""
    from aiinfra.testing import make_project

    project = make_project(tmp_path_factory.mktemp("workers") / "p", git=False, dvc=False)
    served = tmp_path_factory.mktemp("served-workers") / "model"
    shutil.copytree(model_dir, served)
    srv = Server(project, "onnx", served, "server.workers=2").wait()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            for i in range(20):
                assert client.post("/v2/models/model/infer", json=_v2(rows[i : i + 3])).status_code == 200
            for _ in range(4):  # four scrapes: whichever worker answers, it reports all 60 rows
                lines = [
                    ln for ln in client.get("/metrics").text.splitlines() if ln.startswith("aiinfra_predictions_total{")
                ]
                assert len(lines) == 1 and float(lines[0].split()[-1]) == 60, lines
    finally:
        output = srv.stop()
    assert srv.proc.returncode == 0, output
