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

    seen: dict[str, int] = {}
    statuses: dict[int, int] = {}
    answered: dict[str, int] = {}
    stop = threading.Event()

    async def load():
        async def one(c: int):
            async with httpx.AsyncClient(base_url=srv.url, timeout=30, headers=ADMIN) as http:
                k = 0
                while not stop.is_set():
                    rid = f"c{c}-{k}"
                    k += 1
                    r = await http.post(
                        INFER,
                        content=orjson.dumps(
                            {
                                "id": rid,
                                "inputs": [
                                    {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [c, k % 7, 1.5, -2]}
                                ],
                            }
                        ),
                    )
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                    if r.status_code == 200:
                        version = r.json()["model_version"]
                        assert r.headers["x-model-version"] == version
                        seen[version] = seen.get(version, 0) + 1
                        answered[rid] = 1
                    await asyncio.sleep(0.002)

        await asyncio.gather(*(one(c) for c in range(8)))

    loader = threading.Thread(target=lambda: asyncio.run(load()))
    loader.start()
    try:
        time.sleep(0.5)
        client.set_registered_model_alias(NAME, "champion", v2)  # the poller follows within ~0.5 s
        deadline = time.monotonic() + 30
        while seen.get(v2, 0) < 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert seen.get(v2, 0) >= 20, (seen, srv.text()[-2000:])
        # back to v1 through the admin endpoint (the poller may win the race: either way v1 serves)
        client.set_registered_model_alias(NAME, "champion", v1)
        assert httpx.post(f"{srv.url}/admin/reload", timeout=60).status_code == 401  # no key: refused
        result = httpx.post(f"{srv.url}/admin/reload", timeout=60, headers=ADMIN).json()
        assert result["model_version"] == v1, result
        before = seen.get(v1, 0)
        deadline = time.monotonic() + 10
        while seen.get(v1, 0) < before + 20 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        loader.join()
    assert set(statuses) == {200}, statuses
    assert seen[v1] > 20 and seen[v2] >= 20
    assert srv.stop() == 0
    table = read_predictions(srv.log_dir)
    assert table.num_rows == len(answered)
    assert set(table.column("model_version").to_pylist()) == {v1, v2}
    assert f"version {v1} -> {v2}" in srv.text() and f"version {v2} -> {v1}" in srv.text(), srv.text()[-2000:]
    # three downloads (start, v2, v1 again), each deleted once loaded: nothing piles up
    assert not list(tmp.glob("aiinfra-model-*")), list(tmp.iterdir())
