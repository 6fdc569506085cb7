"""API keys: 401 without/with a wrong key, 403 without the role, admin works; keys never logged."""

from __future__ import annotations

import subprocess

import httpx
import orjson
import pytest

from serving_helpers import AIINFRA, ServerProcess, env_for

PREDICT_SECRET = "p-" + "x" * 30
ADMIN_SECRET = "a-" + "y" * 30
INFER_BODY = orjson.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]})


@pytest.fixture(scope="module")
def keyed(serving_project, model_dir, tmp_path_factory):
    keyfile = tmp_path_factory.mktemp("keys") / "keys.txt"
    keyfile.write_text(f"# operators\nops:admin:{ADMIN_SECRET}\n")
    access = serving_project / "access.jsonl"
    srv = ServerProcess(
        serving_project,
        [
            f"server.model_uri={model_dir}",
            f"server.api_keys_file={keyfile}",
            f"server.access_log={access}",
            "server.metrics_public=false",
        ],
        env={"AIINFRA_API_KEYS": f"ci:predict:{PREDICT_SECRET}"},
        name="auth",
    ).start()
    yield srv, access
    srv.stop()


@pytest.mark.parametrize(
    "headers,status",
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong-key-wrong-key-wrong"}, 401),
        ({"X-API-Key": PREDICT_SECRET[:-1]}, 401),
        ({"Authorization": f"Bearer {PREDICT_SECRET}"}, 200),
        ({"X-API-Key": ADMIN_SECRET}, 200),  # admin implies predict
    ],
)
def test_predict_needs_a_key(keyed, headers, status):
    srv, _ = keyed
    r = httpx.post(f"{srv.url}/v2/models/model/infer", content=INFER_BODY, headers=headers)
    assert r.status_code == status, r.text
    if status == 401:
        assert "API key" in r.json()["error"] and r.headers["www-authenticate"] == "Bearer"


def test_admin_needs_admin_role(keyed):
    srv, _ = keyed
    r = httpx.post(f"{srv.url}/admin/reload", headers={"X-API-Key": PREDICT_SECRET})
    assert r.status_code == 403 and "lacks the 'admin' role" in r.json()["error"]
    assert httpx.post(f"{srv.url}/admin/reload").status_code == 401
    r = httpx.post(f"{srv.url}/admin/reload", headers={"X-API-Key": ADMIN_SECRET})
    assert r.status_code == 200 and r.json()["reloaded"] is False
    cfg = httpx.get(f"{srv.url}/admin/config", headers={"Authorization": f"Bearer {ADMIN_SECRET}"}).json()
    assert cfg["auth"]["key_ids"] == ["ci", "ops"] and ADMIN_SECRET not in str(cfg)


def test_without_keys_admin_is_refused_even_from_this_machine(server):
    """No keys configured: predictions are open on loopback, but nothing may change the server
    without a credential (behind a local reverse proxy every client would look local)."""
    for method, path in (("POST", "/admin/reload"), ("GET", "/admin/config")):
        r = httpx.request(method, f"{server.url}{path}")
        assert r.status_code == 403, r.text
        assert "need an admin API key" in r.json()["error"] and "AIINFRA_API_KEYS" in r.json()["error"]
    assert httpx.post(f"{server.url}/v2/models/model/infer", content=INFER_BODY).status_code == 200


def test_feedback_needs_a_predict_key(keyed):
    srv, _ = keyed
    body = {"labels": [{"request_id": "r-1", "label": 1}]}
    assert httpx.post(f"{srv.url}/v2/models/model/feedback", json=body).status_code == 401
    r = httpx.post(f"{srv.url}/v2/models/model/feedback", json=body, headers={"X-API-Key": PREDICT_SECRET})
    assert r.status_code == 200 and r.json()["accepted"] == 1


def test_health_is_open_metrics_can_be_closed(keyed):
    srv, _ = keyed
    assert httpx.get(f"{srv.url}/v2/health/ready").status_code == 200
    assert httpx.get(f"{srv.url}/metrics").status_code == 401
    assert httpx.get(f"{srv.url}/metrics", headers={"X-API-Key": PREDICT_SECRET}).status_code == 200


def _concrete(path: str) -> str:
    return path.replace("{name}", "model").replace("{version}", "local")


def test_openapi_lists_exactly_the_route_table(server):
    from aiinfra.serving.routes import ENDPOINTS

    spec = httpx.get(f"{server.url}/openapi.json").json()
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    table = {(e.path, method) for e in ENDPOINTS for method in e.methods}
    assert documented == table
    # and every table route is served: none is a 404 or 405 from the router
    for path, method in sorted(table - {("/admin/reload", "POST"), ("/admin/config", "GET")}):
        r = httpx.request(method, f"{server.url}{_concrete(path)}", timeout=30)
        assert r.status_code not in (404, 405), (method, path, r.status_code, r.text)


def test_each_route_enforces_the_role_of_the_table(keyed):
    """The keyed server has server.metrics_public=false: /metrics needs predict like the table says."""
    from aiinfra.serving.routes import ENDPOINTS
    from aiinfra.serving.schema import HttpServerConfig

    srv, _ = keyed
    served = HttpServerConfig(metrics_public=False)
    checked = 0
    for e in ENDPOINTS:
        role = e.role(served)
        for method in e.methods:
            url = f"{srv.url}{_concrete(e.path)}"
            anonymous = httpx.request(method, url, timeout=30).status_code
            as_predict = httpx.request(method, url, headers={"X-API-Key": PREDICT_SECRET}, timeout=30).status_code
            if role is None:
                assert anonymous not in (401, 403) and as_predict not in (401, 403), (method, e.path)
            elif role == "predict":
                assert anonymous == 401 and as_predict not in (401, 403), (method, e.path, as_predict)
            else:
                assert role == "admin" and anonymous == 401 and as_predict == 403, (method, e.path)
            checked += 1
    assert checked == sum(len(e.methods) for e in ENDPOINTS)


def test_access_log_has_key_ids_never_keys(serving_project, model_dir, tmp_path):
    """Its own server and access log: the lines it checks are written by this test's requests alone."""
    keyfile = tmp_path / "keys.txt"
    keyfile.write_text(f"ops:admin:{ADMIN_SECRET}\n")
    access = tmp_path / "access.jsonl"
    srv = ServerProcess(
        serving_project,
        [f"server.model_uri={model_dir}", f"server.api_keys_file={keyfile}", f"server.access_log={access}"],
        env={"AIINFRA_API_KEYS": f"ci:predict:{PREDICT_SECRET}"},
        name="access-log",
    ).start()
    try:
        infer = f"{srv.url}/v2/models/model/infer"
        assert httpx.post(infer, content=INFER_BODY, headers={"X-API-Key": PREDICT_SECRET}).status_code == 200
        as_admin = {"Authorization": f"Bearer {ADMIN_SECRET}"}
        assert httpx.post(infer, content=INFER_BODY, headers=as_admin).status_code == 200
        assert httpx.post(f"{srv.url}/admin/reload", headers={"X-API-Key": PREDICT_SECRET}).status_code == 403
        wrong = PREDICT_SECRET[:-1] + "z"  # a near-miss secret is not logged either
        assert httpx.post(infer, content=INFER_BODY, headers={"X-API-Key": wrong}).status_code == 401
    finally:
        assert srv.stop() == 0, srv.text()  # flushes the access log
    text = access.read_text()
    # the readiness polls of the start are open (no key): left out
    records = [r for r in map(orjson.loads, text.splitlines()) if not r["path"].startswith("/v2/health")]
    assert [(r["path"], r["status"], r["key_id"]) for r in records] == [
        ("/v2/models/model/infer", 200, "ci"),
        ("/v2/models/model/infer", 200, "ops"),
        ("/admin/reload", 403, "ci"),
        ("/v2/models/model/infer", 401, None),
    ]
    assert records[0]["rows"] == 1
    for secret in (PREDICT_SECRET, ADMIN_SECRET, wrong):
        assert secret not in text and secret not in srv.text()


def run_serve(project, *overrides, env=None):
    return subprocess.run(
        [*AIINFRA, "serve", *overrides],
        cwd=project,
        env=env_for(project, **(env or {})),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_refuses_public_bind_without_keys(serving_project, model_dir):
    proc = run_serve(serving_project, f"server.model_uri={model_dir}", "server.host=0.0.0.0")
    assert proc.returncode == 2
    assert "refusing to listen on 0.0.0.0 without API keys" in proc.stderr
    assert "allow_unauthenticated" in proc.stderr and "Traceback" not in proc.stderr


def test_malformed_key_entry_is_a_clean_error(serving_project, model_dir):
    proc = run_serve(
        serving_project, f"server.model_uri={model_dir}", env={"AIINFRA_API_KEYS": "ci:superuser:0123456789abcdefghij"}
    )
    # the entry is named by its number, none of its fields shown (a misplaced secret could be any)
    assert proc.returncode == 2 and "API key entry 1" in proc.stderr and "predict, admin" in proc.stderr
    assert "0123456789abcdefghij" not in proc.stderr and "superuser" not in proc.stderr
