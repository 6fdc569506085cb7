"""No key ever appears in a message, a log line or an error body; reload errors keep their whole cause."""

from __future__ import annotations

import itertools
import shutil
import subprocess

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinfra.errors import AiinfraError
from aiinfra.serving.auth import KeyStore, parse_keys
from aiinfra.serving.reload import describe_failure
from serving_helpers import AIINFRA, env_for, free_port

secrets_ = st.text(alphabet=st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=40)
roles = st.sampled_from(["predict", "admin", "predict+admin", "reader", ""])


@given(kid=st.text(alphabet="abcdefgh-", min_size=1, max_size=8), role=roles, secret=secrets_)
@settings(max_examples=300, deadline=None, derandomize=True, database=None)
def test_a_key_entry_in_any_field_order_never_shows_its_secret(kid, role, secret):
    for order in itertools.permutations([kid, role, secret]):
        text = ":".join(order)
        try:
            KeyStore(parse_keys(f"{text};{text}", "$AIINFRA_API_KEYS"))
        except AiinfraError as exc:
            message = str(exc)
            assert "entry" in message or "API keys" in message
            if secret not in (kid, role) and len(secret) >= 4 and secret not in "predict+admin $AIINFRA_API_KEYS":
                assert secret not in message, message


SECRET_A = "s3cret-admin-0123456789abcdef"
SECRET_P = "s3cret-predict-0123456789abcd"


def test_a_misordered_key_entry_at_startup_does_not_print_the_secret(serving_project, model_dir):
    port = free_port()
    env = env_for(serving_project, AIINFRA_API_KEYS=f"ci:{SECRET_P}:predict")  # role and secret swapped
    out = subprocess.run(
        [*AIINFRA, "serve", f"server.model_uri={model_dir}", f"server.port={port}"],
        cwd=serving_project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "aiinfra: error: API key entry 1" in out.stderr and "wrong order" in out.stderr, out.stderr
    assert SECRET_P not in out.stdout + out.stderr


def test_no_configured_key_in_any_answer_or_log_line(start_server, model_dir):
    keys = f"ops:admin:{SECRET_A};app:predict:{SECRET_P}"
    srv = start_server(
        [f"server.model_uri={model_dir}", "server.reload_interval_s=0"], env={"AIINFRA_API_KEYS": keys}, name="keys"
    )
    bodies = []
    body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        attempts = [
            ("post", "/v2/models/model/infer", {"Authorization": f"Bearer {SECRET_P}"}, 200),
            ("post", "/v2/models/model/infer", {"X-API-Key": SECRET_A[:-1]}, 401),  # almost the key
            ("post", "/v2/models/model/infer", {"Authorization": f"Basic {SECRET_P}"}, 401),
            ("post", "/admin/reload", {"X-API-Key": SECRET_P}, 403),
            ("get", "/admin/config", {"X-API-Key": SECRET_A}, 200),
            ("post", "/admin/reload?force=1", {"Authorization": f"Bearer {SECRET_A}"}, 200),
            ("post", "/invocations", {"X-API-Key": SECRET_P, "Content-Type": "text/csv"}, 422),
        ]
        for method, path, headers, status in attempts:
            kw = {"json": body} if path.endswith("infer") else {"content": b"a,b\n1,2"} if "invoc" in path else {}
            r = getattr(c, method)(path, headers=headers, **kw)
            assert r.status_code == status, (path, r.status_code, r.text)
            bodies.append(r.text + str(dict(r.headers)))
    assert srv.stop() == 0
    everything = "\n".join(bodies) + srv.text()
    assert '"key_id":"app"' in srv.text()  # the access log names keys by id ...
    for secret in (SECRET_A, SECRET_P, SECRET_A[:-1]):
        assert secret not in everything  # ... and never by secret


def test_reload_error_keeps_every_line_and_the_cause():
    try:
        try:
            raise OSError("disk gone")
        except OSError as inner:
            raise RuntimeError("Error(s) in loading state_dict:\n\tsize mismatch for net.0.weight") from inner
    except RuntimeError as exc:
        msg = describe_failure("models:/churn@champion", "7", exc)
    assert "models:/churn@champion (version 7)" in msg
    assert "size mismatch for net.0.weight" in msg and "caused by OSError: disk gone" in msg


@pytest.mark.slow
def test_a_broken_model_on_reload_reports_the_whole_cause(start_server, model_factory, tmp_path):
    served = model_factory(tmp_path / "served" / "model")
    other = model_factory(tmp_path / "other" / "model", features=["a", "b", "c", "d", "e", "f"])
    srv = start_server(
        [f"server.model_uri={served}", "server.reload_interval_s=0"],
        env={"AIINFRA_API_KEYS": f"ops:admin:{SECRET_A}"},
        name="broken-reload",
    )
    shutil.copy(other / "weights.pt", served / "weights.pt")  # the wrong weights for this model.json
    r = httpx.post(f"{srv.url}/admin/reload?force=1", headers={"X-API-Key": SECRET_A}, timeout=60)
    assert r.status_code == 502
    error = r.json()["error"]
    # torch's message is several lines: the first alone ("Error(s) in loading state_dict") says nothing
    assert "state_dict" in error and "size mismatch" in error, error
    assert r.json()["model_version"] == "local"  # still serving the old one
    ok = httpx.post(
        f"{srv.url}/v2/models/model/infer",
        json={"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]},
        headers={"X-API-Key": SECRET_A},
    )
    assert ok.status_code == 200
