"""Labels for earlier predictions: POST them to the server, and the monitor's accuracy comes from them."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from aiinfra.monitoring import engine, feedback, windows

FEATURES = ["f0", "f1", "f2", "f3"]


def _predict(srv, rid: str, x: list[float]) -> int:
    r = httpx.post(
        f"{srv.url}/v2/models/model/infer",
        json={"id": rid, "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": x}]},
    )
    assert r.status_code == 200, r.text
    return next(o for o in r.json()["outputs"] if o["name"] == "label")["data"][0]


def test_labels_posted_to_the_server_give_the_monitor_its_accuracy(start_server, model_dir, tmp_path):
    fb_dir = tmp_path / "feedback"
    srv = start_server(
        [
            f"server.model_uri={model_dir}",
            f"server.feedback_dir={fb_dir}",
            "server.log_flush_interval_s=0.2",
            "server.access_log=null",
        ],
        name="feedback",
    )
    url = f"{srv.url}/v2/models/model/feedback"
    rng = np.random.default_rng(0)
    predicted = {f"r{i}": _predict(srv, f"r{i}", rng.normal(size=4).tolist()) for i in range(40)}

    # bad requests: one clear error each, and nothing stored
    bad = [
        (b"{not json", 400, "JSON"),
        (json.dumps({"labels": []}).encode(), 422, "at least one label"),
        (json.dumps({"labels": [{"label": 1}]}).encode(), 422, "labels[0].request_id"),
        (
            json.dumps({"labels": [{"request_id": "r1", "label": 1}, {"request_id": "r2", "label": 7}]}).encode(),
            422,
            "labels[1].label 7 is not one of the model's classes: 0, 1",
        ),
    ]
    for body, status, words in bad:
        r = httpx.post(url, content=body, headers={"content-type": "application/json"})
        assert r.status_code == status and words in r.json()["error"], (status, r.text)
    r = httpx.post(f"{srv.url}/v2/models/other/feedback", json={"labels": [{"request_id": "r1", "label": 1}]})
    assert r.status_code == 404 and "this server serves 'model'" in r.json()["error"]
    assert not fb_dir.exists() or not list(fb_dir.rglob("*.parquet"))

    # the truth: the first 30 as predicted, the last 10 the other class; r0 is first labelled
    # wrongly, then corrected (the latest label counts); labels as 1, "1" or 1.0 are the same class
    truth = {rid: (p if i < 30 else 1 - p) for i, (rid, p) in enumerate(predicted.items())}
    first = [{"request_id": "r0", "label": 1 - truth["r0"]}]
    first += [{"request_id": rid, "label": str(y)} for rid, y in list(truth.items())[1:20]]
    r = httpx.post(url, json={"labels": first})
    assert r.status_code == 200 and r.json() == {"accepted": 20, "model_name": "model", "model_version": "local"}
    second = [{"request_id": rid, "label": float(y)} for rid, y in list(truth.items())[20:]]
    second.append({"request_id": "r0", "label": truth["r0"]})
    assert httpx.post(url, json={"labels": second}).json()["accepted"] == 21
    metrics = httpx.get(f"{srv.url}/metrics").text
    assert "aiinfra_feedback_labels_total 41.0" in metrics
    assert srv.stop() == 0  # flushes the prediction log

    parts = sorted(fb_dir.rglob("*.parquet"))
    assert len(parts) == 2 and all(p.parent.name.startswith("date=") for p in parts)
    stored = pa.concat_tables([pq.read_table(p) for p in parts])
    assert stored.schema.field("target").type == pa.int64()  # typed like the model's classes
    assert set(stored.column_names) == {"request_id", "target", "received", "model_name", "model_version"}

    # the monitor joins them to the prediction log by request id
    ref = engine.Reference(
        pa.table({**{f: rng.normal(size=50) for f in FEATURES}, "target": rng.integers(0, 2, 50)}),
        {"features": FEATURES, "target": "target"},
        tmp_path / "reference.parquet",
    )
    result = feedback.evaluate(str(fb_dir), ref, windows.open_file(srv.log_dir))
    assert result["labelled_rows"] == 40 and result["window_rows"] == 40
    assert result["accuracy"] == 30 / 40
    assert result["target"]["method"] in ("chisquare", "z", "jensenshannon")


def test_label_forms_and_clear_errors():
    import pytest

    from aiinfra.serving.feedback import parse
    from aiinfra.serving.protocol import RequestError

    ints, words = np.array([0, 1]), np.array(["cat", "dog"], dtype=object)
    ids, labels = parse(
        json.dumps(
            {
                "labels": [
                    {"request_id": "a", "label": "1"},
                    {"request_id": "b", "label": 0.0},
                    {"request_id": "c", "target": 1},
                ]
            }
        ).encode(),
        ints,
        "target",
        10,
    )
    assert ids == ["a", "b", "c"] and labels.tolist() == [1, 0, 1]  # "1", 0.0 and the target's own name
    assert parse(b'{"labels": [{"request_id": "a", "label": "dog"}]}', words, "y", 10)[1].tolist() == ["dog"]
    for body, status, words_in_error in [
        (b'{"labels": [{"request_id": "a"}]}', 422, "labels[0] has no label"),
        (b'{"labels": [{"request_id": "a", "label": 0.5}]}', 422, "0.5 is not one of the model's classes: 0, 1"),
        (b'{"labels": [{"request_id": "a", "label": true}]}', 422, "is not one of the model's classes"),
        (b'{"labels": [{"request_id": "' + b"x" * 200 + b'", "label": 1}]}', 422, "at most 128"),
        (b'{"labels": [1, 2]}', 422, "labels[0] is not an object"),
        (b'{"labels": [' + b",".join([b'{"request_id": "a", "label": 1}'] * 11) + b"]}", 413, "at most 10"),
        (b"[]", 422, "at least one label"),
    ]:
        with pytest.raises(RequestError) as err:
            parse(body, ints, "target", 10)
        assert err.value.status == status and words_in_error in err.value.message, err.value.message
