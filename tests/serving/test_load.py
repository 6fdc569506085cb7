"""Under load: zero errors, rows logged == rows answered, SIGTERM loses nothing, a full queue is 503."""

from __future__ import annotations

import asyncio
import random
import signal
import time

import httpx
import numpy as np
import orjson
import pytest

from aiinfra.serving.predlog import read_predictions

INFER = "/v2/models/model/infer"


def body(i: int, rows: int = 1) -> bytes:
    rnd = random.Random(i)
    data = [[rnd.uniform(-3, 3) for _ in range(4)] for _ in range(rows)]
    return orjson.dumps(
        {"id": f"r{i}", "inputs": [{"name": "input", "shape": [rows, 4], "datatype": "FP32", "data": data}]}
    )


async def hammer(
    url: str,
    clients: int,
    requests_each: int,
    start: int = 0,
    stop_after: float | None = None,
    answered: dict[str, int] | None = None,
):
    """`clients` concurrent keep-alive clients; returns (answered rows by request id, statuses, errors)."""
    answered = {} if answered is None else answered
    statuses: dict[int, int] = {}
    errors: list[str] = []
    t_end = time.monotonic() + stop_after if stop_after else None

    async def one_client(c: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            for k in range(requests_each):
                if t_end and time.monotonic() > t_end:
                    return
                i = start + c * requests_each + k
                rows = 1 + (i % 3)
                try:
                    r = await client.post(INFER, content=body(i, rows))
                except httpx.TransportError as exc:  # refused after shutdown began: never accepted
                    errors.append(type(exc).__name__)
                    return
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if r.status_code == 200:
                    out = r.json()
                    assert out["id"] == f"r{i}" and out["outputs"][0]["shape"] == [rows]
                    answered[out["id"]] = rows

    await asyncio.gather(*(one_client(c) for c in range(clients)))
    return answered, statuses, errors


def logged_rows(log_dir) -> dict[str, int]:
    table = read_predictions(log_dir)
    counts: dict[str, int] = {}
    for rid in table.column("request_id").to_pylist() if table.num_rows else []:
        counts[rid] = counts.get(rid, 0) + 1
    return counts


@pytest.mark.slow
def test_load_then_sigterm_under_load_loses_nothing(start_server, model_dir):
    srv = start_server([f"server.model_uri={model_dir}", "server.access_log=null"], name="load")
    # 1. bounded load: 32 concurrent clients, zero errors
    answered, statuses, errors = asyncio.run(hammer(srv.url, clients=32, requests_each=40))
    assert statuses == {200: 32 * 40} and not errors
    # concurrent requests shared forward passes: a request has at most 3 rows, so a forward pass of
    # more than 4 rows (above the histogram's le="4.0" bucket) served several requests at once
    samples = dict(
        line.rsplit(" ", 1)
        for line in httpx.get(f"{srv.url}/metrics").text.splitlines()
        if line.startswith("aiinfra_batch_size_rows_")
    )
    passes = float(samples["aiinfra_batch_size_rows_count"])
    small = float(samples['aiinfra_batch_size_rows_bucket{le="4.0"}'])
    assert passes < 32 * 40 and passes > small, samples

    # 2. SIGTERM while 32 clients are sending: everything answered is logged, exit status 0
    async def load_and_kill():
        live: dict[str, int] = {}
        task = asyncio.create_task(
            hammer(srv.url, clients=32, requests_each=10_000, start=10**6, stop_after=60, answered=live)
        )
        deadline = time.monotonic() + 30
        while len(live) < 300 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        srv.proc.send_signal(signal.SIGTERM)
        return await task

    answered2, statuses2, _ = asyncio.run(load_and_kill())
    rc = srv.stop()
    assert rc == 0, srv.text()
    assert set(statuses2) <= {200, 503}, statuses2
    assert len(answered2) >= 300, "the load was running when SIGTERM came"
    logged = logged_rows(srv.log_dir)
    expected = {**answered, **answered2}
    assert logged == expected, (len(logged), len(expected))


def test_full_queue_is_503_with_retry_after(start_server, model_dir):
    srv = start_server(
        [
            f"server.model_uri={model_dir}",
            "server.max_queue_rows=2",
            "server.inference=thread",
            "server.max_wait_ms=5",
            "server.access_log=null",
        ],
        name="backpressure",
    )
    answered, statuses, errors = asyncio.run(hammer(srv.url, clients=32, requests_each=5))
    assert not errors and set(statuses) == {200, 503} and statuses[503] > 0, statuses
    # one request at a time never overflows a queue of 2 rows
    with httpx.Client(base_url=srv.url) as client:
        for i in range(10_000, 10_020):
            r = client.post(INFER, content=body(i))
            assert r.status_code == 200
            answered[f"r{i}"] = 1
    assert srv.stop() == 0
    assert logged_rows(srv.log_dir) == answered


def test_retry_after_header(start_server, model_dir):
    srv = start_server(
        [
            f"server.model_uri={model_dir}",
            "server.max_queue_rows=1",
            "server.inference=thread",
            "server.max_wait_ms=300",
            "server.retry_after_s=3",
            "server.access_log=null",
        ],
        name="retry",
    )

    async def burst():
        async with httpx.AsyncClient(base_url=srv.url) as c:
            return await asyncio.gather(*(c.post(INFER, content=body(i)) for i in range(8)))

    responses = asyncio.run(burst())
    full = [r for r in responses if r.status_code == 503]
    assert full and all(r.headers["retry-after"] == "3" and "capacity" in r.json()["error"] for r in full)
    assert any(r.status_code == 200 for r in responses)


class WorkerLoad:
    """Concurrent keep-alive clients against a ``server.workers=2`` server, recording which worker
    process answered each request: a client's connection is matched to the worker holding its
    other end (psutil's view of each worker's sockets, sampled while the load runs)."""

    def __init__(self, srv, workers: set[int]):
        self.srv, self.workers = srv, workers
        self.answered: dict[str, tuple[int, int]] = {}  # request id -> (rows, client port)
        self.statuses: dict[int, int] = {}
        self.errors: list[str] = []
        self.owner: dict[int, int] = {}  # client port -> worker pid
        self.sigterm_at: int | None = None  # answers received when SIGTERM was sent

    def sample(self) -> None:
        import psutil

        for pid in self.workers:
            try:
                conns = psutil.Process(pid).net_connections(kind="tcp")
            except psutil.Error:  # the worker has exited
                continue
            for c in conns:
                if c.raddr and c.laddr and c.laddr.port == self.srv.port:
                    self.owner[c.raddr.port] = pid

    async def client(self, c: int, requests: int, start: int) -> None:
        limits = httpx.Limits(max_connections=1)  # one connection at a time: its worker answers
        port = [0]  # the client port of the connection in use, taken when it is opened

        async def trace(event: str, info: dict) -> None:
            if event == "connection.connect_tcp.complete":
                port[0] = info["return_value"].get_extra_info("client_addr")[1]

        async with httpx.AsyncClient(base_url=self.srv.url, timeout=30, limits=limits) as http:
            for k in range(requests):
                i = start + c * requests + k
                rows = 1 + (i % 3)
                try:
                    r = await http.post(INFER, content=body(i, rows), extensions={"trace": trace})
                except httpx.TransportError as exc:  # refused after shutdown began: never accepted
                    self.errors.append(type(exc).__name__)
                    return
                self.statuses[r.status_code] = self.statuses.get(r.status_code, 0) + 1
                if r.status_code == 200:
                    self.answered[r.json()["id"]] = (rows, port[0])

    async def run(self, clients: int, requests: int, start: int, sigterm_after: int | None = None) -> None:
        async def sampler():
            while True:
                self.sample()
                if sigterm_after is not None and len(self.answered) >= sigterm_after:
                    self.srv.proc.send_signal(signal.SIGTERM)  # the load is still running
                    self.sigterm_at = len(self.answered)
                    return
                await asyncio.sleep(0.02)

        task = asyncio.create_task(sampler())
        await asyncio.gather(*(self.client(c, requests, start) for c in range(clients)))
        if not task.done():
            task.cancel()

    def by_worker(self) -> dict[int, dict[str, int]]:
        out: dict[int, dict[str, int]] = {pid: {} for pid in self.workers}
        for rid, (rows, port) in self.answered.items():
            assert port in self.owner, f"request {rid}: no worker held client port {port}"
            out[self.owner[port]][rid] = rows
        return out


def logged_by_worker(log_dir) -> dict[int, dict[str, int]]:
    """Rows per request id in each worker's own part files (their names carry the pid)."""
    import pyarrow.parquet as pq

    out: dict[int, dict[str, int]] = {}
    for part in log_dir.rglob("part-*.parquet"):
        counts = out.setdefault(int(part.name.split("-")[2]), {})
        for rid in pq.read_table(part, columns=["request_id"]).column("request_id").to_pylist():
            counts[rid] = counts.get(rid, 0) + 1
    return out


@pytest.mark.slow
def test_two_workers_string_labels_and_clean_stop(start_server, model_factory, tmp_path):
    """workers=2: each process logs exactly the rows it answered, also when SIGTERM comes during the
    load; labels of a string target travel as BYTES."""
    import re

    import tritonclient.http as triton

    from aiinfra.models.model_dir import Predictor

    model = model_factory(tmp_path / "model", seed=5, classes=("no", "yes"))
    srv = start_server([f"server.model_uri={model}", "server.workers=2", "server.access_log=null"], name="workers")
    deadline = time.monotonic() + 60  # ready = one worker ready; wait for the second one too
    while len(set(re.findall(r"in process (\d+)", srv.text()))) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = {int(p) for p in re.findall(r"in process (\d+)", srv.text())}
    assert len(workers) == 2, srv.text()[-2000:]

    # 1. bounded load: every request answered
    first = WorkerLoad(srv, workers)
    asyncio.run(first.run(clients=16, requests=25, start=0))
    assert first.statuses == {200: 400} and not first.errors
    # any worker's /metrics reports the rows of both (multiprocess collector)
    rows_first = sum(rows for rows, _ in first.answered.values())
    for _ in range(3):
        lines = [
            ln
            for ln in httpx.get(f"{srv.url}/metrics").text.splitlines()
            if ln.startswith("aiinfra_predictions_total{")
        ]
        assert len(lines) == 1 and float(lines[0].split()[-1]) == rows_first, lines
    x = np.array([[0.5, -1, 2, 0], [3, 3, -3, 1]], dtype=np.float32)
    client = triton.InferenceServerClient(url=srv.url.removeprefix("http://"))
    inp = triton.InferInput("input", [2, 4], "FP32")
    inp.set_data_from_numpy(x)
    result = client.infer("model", [inp], outputs=[triton.InferRequestedOutput("label")], request_id="triton-1")
    labels = [v.decode() for v in result.as_numpy("label")]
    assert labels == Predictor.load(model).predict(x).tolist()
    client.close()

    # 2. SIGTERM to the server while 16 clients are sending
    second = WorkerLoad(srv, workers)
    asyncio.run(second.run(clients=16, requests=10_000, start=10**6, sigterm_after=200))
    assert second.sigterm_at is not None, "the load ended before SIGTERM was sent"
    rc = srv.proc.wait(timeout=60)  # one SIGTERM only (a second one may force the exit)
    assert rc == 0 and srv.stop() == 0, srv.text()
    assert set(second.statuses) <= {200, 503}, second.statuses
    assert len(second.answered) > second.sigterm_at, "requests were still answered after SIGTERM came"

    # each worker process logged exactly the rows it answered, request by request
    logged = logged_by_worker(srv.log_dir)
    assert set(logged) <= workers, (set(logged), workers)
    triton_rows = {pid: rows.pop("triton-1") for pid, rows in logged.items() if "triton-1" in rows}
    assert list(triton_rows.values()) == [2], triton_rows
    expected = {pid: {**first.by_worker()[pid], **second.by_worker()[pid]} for pid in workers}
    assert {pid: logged.get(pid, {}) for pid in workers} == expected, {
        pid: (len(logged.get(pid, {})), len(expected[pid])) for pid in workers
    }
    table = read_predictions(srv.log_dir)
    assert set(table.column("prediction").to_pylist()) <= {"no", "yes"}
