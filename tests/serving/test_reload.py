"""Hot reload from the MLflow registry: the alias moves, the server follows, no request fails."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time

import httpx
import orjson
import pytest

from aiinfra.serving.predlog import read_predictions
from serving_helpers import make_model, register_versions

NAME = "churn"
INFER = f"/v2/models/{NAME}/infer"
ADMIN = {"X-API-Key": "ops-" + "r" * 28}  # /admin/reload needs an admin key (admin implies predict)


@pytest.fixture(scope="module")
def registry(tmp_path_factory, mlflow_db_template):
    root = tmp_path_factory.mktemp("registry")
    shutil.copy(mlflow_db_template, root / "mlflow.db")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    v1, v2 = register_versions(
        uri,
        NAME,
        [make_model(root / "v1" / "model", seed=1), make_model(root / "v2" / "model", seed=2)],
        root / "artifacts",
    )
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.set_registered_model_alias(NAME, "champion", v1)
    return uri, client, v1, v2


@pytest.mark.slow
def test_alias_move_under_load_fails_no_request(start_server, registry, tmp_path):
    uri, client, v1, v2 = registry
    tmp = tmp_path / "server-tmp"  # the server's temporary directory: registry downloads land here
    tmp.mkdir()
    srv = start_server(
        [f"register.model_name={NAME}", "server.reload_interval_s=0.5", "server.access_log=null"],
        env={"MLFLOW_TRACKING_URI": uri, "TMPDIR": str(tmp), "AIINFRA_API_KEYS": f"ops:admin:{ADMIN['X-API-Key']}"},
        name="reload",
    )
    assert httpx.get(f"{srv.url}/v2/models/{NAME}", headers=ADMIN).json()["versions"] == [v1]

    # The load thread only records; every assertion is made here, in the test (an assertion in a
    # thread would become a warning, and a request lost to an exception would go unnoticed).
    seen: dict[str, int] = {}  # model version -> 200 answers
    statuses: dict[int, int] = {}
    answered: dict[str, int] = {}
    problems: list[str] = []  # transport errors, header/body disagreements, load-thread crashes
    stop = threading.Event()

    async def load():
        async def one(c: int):
            async with httpx.AsyncClient(base_url=srv.url, timeout=30, headers=ADMIN) as http:
                k = 0
                while not stop.is_set():
                    rid = f"c{c}-{k}"
                    k += 1
                    data = [c, k % 7, 1.5, -2]
                    body = {"id": rid, "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": data}]}
                    try:
                        r = await http.post(INFER, content=orjson.dumps(body))
                    except httpx.HTTPError as exc:
                        problems.append(f"{rid}: {type(exc).__name__}: {exc}")
                        await asyncio.sleep(0.01)
                        continue
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                    if r.status_code == 200:
                        version = r.json()["model_version"]
                        if r.headers.get("x-model-version") != version:
                            problems.append(f"{rid}: header {r.headers.get('x-model-version')} != body {version}")
                        seen[version] = seen.get(version, 0) + 1
                        answered[rid] = 1
                    await asyncio.sleep(0.002)

        await asyncio.gather(*(one(c) for c in range(8)))

    def run_load():
        try:
            asyncio.run(load())
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            problems.append(f"load thread: {type(exc).__name__}: {exc}")

    def wait_for(version: str, at_least: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while seen.get(version, 0) < at_least and time.monotonic() < deadline and loader.is_alive():
            time.sleep(0.05)
        return seen.get(version, 0)

    loader = threading.Thread(target=run_load)
    loader.start()
    try:
        # phase 1: v1 answers under load
        assert wait_for(v1, 20, 30) >= 20, (seen, statuses, problems[:5])
        # phase 2: the alias moves; the poller follows within ~0.5 s, requests keep flowing
        client.set_registered_model_alias(NAME, "champion", v2)
        assert wait_for(v2, 20, 30) >= 20, (seen, statuses, problems[:5], srv.text()[-2000:])
        # phase 3: back to v1 through the admin endpoint (the poller may win the race: either way v1 serves)
        client.set_registered_model_alias(NAME, "champion", v1)
        assert httpx.post(f"{srv.url}/admin/reload", timeout=60).status_code == 401  # no key: refused
        result = httpx.post(f"{srv.url}/admin/reload", timeout=60, headers=ADMIN).json()
        assert result["model_version"] == v1, result
        before = seen.get(v1, 0)
        assert wait_for(v1, before + 20, 30) >= before + 20, (seen, statuses, problems[:5])
    finally:
        stop.set()
        loader.join()
    # every request of every phase (the switches included) was answered, by the version it names
    assert not problems, problems[:10]
    assert set(statuses) == {200}, statuses
    assert sum(statuses.values()) == len(answered) == sum(seen.values())
    assert srv.stop() == 0
    table = read_predictions(srv.log_dir)
    assert table.num_rows == len(answered)
    assert sorted(table.column("request_id").to_pylist()) == sorted(answered)
    logged_versions = table.column("model_version").to_pylist()
    assert {v: logged_versions.count(v) for v in (v1, v2)} == {v: seen[v] for v in (v1, v2)}, seen
    assert f"version {v1} -> {v2}" in srv.text() and f"version {v2} -> {v1}" in srv.text(), srv.text()[-2000:]
    # three downloads (start, v2, v1 again), each deleted once loaded: nothing piles up
    assert not list(tmp.glob("aiinfra-model-*")), list(tmp.iterdir())
