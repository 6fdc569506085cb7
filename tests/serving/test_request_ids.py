"""One request-id rule in the V2 body, the X-Request-ID header, the prediction log and feedback,
generated over ids (Hypothesis): an id the server accepts comes back unchanged in the body and the
header, is the id of the logged rows, and feedback joins on it; an id it refuses is refused
everywhere with a 4xx naming where it came from. Non-string ids are refused, never stored as a repr.
"""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiinfra.serving.predlog import read_predictions
from aiinfra.serving.protocol import MAX_REQUEST_ID_CHARS, usable_request_id
from fault_helpers import INFER, wait_for

SETTINGS = settings(
    max_examples=200, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
ids = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=MAX_REQUEST_ID_CHARS),
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=125, max_size=135),
    st.text(max_size=20),
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
TENSOR = {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}


@pytest.fixture(scope="module")
def session(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        accepted: list[str] = []
        yield c, accepted
    # every accepted id is the id of its logged row: feedback can join on what the client got back
    wait_for(lambda: set(accepted) <= set(read_predictions(server.log_dir).column("request_id").to_pylist()))


@given(rid=ids, where=st.sampled_from(["body", "header"]))
@SETTINGS
def test_one_rule_in_body_header_log_and_feedback(session, rid, where):
    client, accepted = session
    if where == "body":
        r = client.post(INFER, content=json.dumps({"id": rid, "inputs": [TENSOR]}).encode())
    else:
        if not isinstance(rid, str) or not rid.isascii() or "\n" in rid or "\r" in rid:
            return  # not sendable as an HTTP header at all
        try:
            r = client.post(INFER, json={"inputs": [TENSOR]}, headers={"X-Request-ID": rid})
        except httpx.LocalProtocolError:  # a value httpx refuses to send (e.g. control characters)
            return
        if r.request.headers["x-request-id"] != rid:  # httpx trimmed it: not what we meant to test
            return
    fb = client.post(
        "/v2/models/model/feedback", content=json.dumps({"labels": [{"request_id": rid, "label": 1}]}).encode()
    )
    if usable_request_id(rid):
        assert r.status_code == 200, r.text
        assert r.json()["id"] == rid and r.headers["x-request-id"] == rid
        assert fb.status_code == 200, fb.text
        accepted.append(rid)
    else:
        assert r.status_code == 400, r.text
        assert ("'id'" if where == "body" else "X-Request-ID") in r.json()["error"]
        assert fb.status_code == 422 and "labels[0].request_id" in fb.json()["error"]


def test_without_an_id_the_server_makes_one_that_follows_the_rule(server):
    r = httpx.post(f"{server.url}{INFER}", json={"inputs": [TENSOR]})
    assert r.status_code == 200 and usable_request_id(r.json()["id"]) and r.headers["x-request-id"] == r.json()["id"]
