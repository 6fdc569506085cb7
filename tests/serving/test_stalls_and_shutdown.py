"""Stalled clients, connection floods and the order of a shutdown, against real servers on 127.0.0.1.

* a client that sends headers and part of a body is answered 408 and its connection closed;
* a slowloris flood (300 sockets that never finish their headers) does not stop a normal client
  from being served, and the stalled sockets are closed with a 408;
* beyond ``server.max_connections`` open connections, a request is answered 503;
* SIGTERM: ``/v2/health/ready`` answers 503 at once while predictions are still served for
  ``server.shutdown_delay_s``, a stalled body is answered 503 instead of holding the drain for
  ``graceful_timeout_s``, the drain completes, and rows logged == rows answered.
"""

from __future__ import annotations

import signal
import subprocess
import threading

import httpx
import orjson
import pytest

from aiinfra.serving.predlog import read_predictions
from fault_helpers import INFER, infer_body, metric, open_partial, read_response, wait_for


@pytest.fixture(scope="module")
def guarded(serving_project, model_dir):
    from serving_helpers import ServerProcess

    srv = ServerProcess(
        serving_project,
        [f"server.model_uri={model_dir}", "server.body_timeout_s=1", "server.access_log=null"],
        name="guarded",
    ).start()
    yield srv
    assert srv.stop() == 0, srv.text()


def test_a_stalled_body_is_answered_408_and_closed(guarded):
    s = open_partial(guarded.port, body=b'{"inputs": [', declared=200)
    # while it stalls it is a request in flight: the autoscaling gauge counts it (and the scrape)
    assert wait_for(lambda: metric(guarded.url, "aiinfra_inflight_requests") >= 2, timeout=5)
    status, body, closed = read_response(s)
    s.close()
    assert status == 408 and closed, (status, body)
    assert "server.body_timeout_s" in orjson.loads(body)["error"]
    assert metric(guarded.url, "aiinfra_inflight_requests") == 1  # only the scrape itself
    # the same holds on the Starlette routes (feedback)
    s = open_partial(guarded.port, body=b'{"labels": [', declared=200, path="/v2/models/model/feedback")
    status, body, closed = read_response(s)
    s.close()
    assert status == 408 and closed and "body_timeout_s" in orjson.loads(body)["error"]


def test_a_slowloris_flood_does_not_stop_a_normal_client(guarded):
    flood = [open_partial(guarded.port) for _ in range(300)]  # headers never completed
    try:
        with httpx.Client(base_url=guarded.url, timeout=10) as client:
            for i in range(20):
                r = client.post(INFER, content=infer_body(f"normal-{i}"))
                assert r.status_code == 200, r.text
        # the stalled sockets are closed, each with a 408 naming the deadline
        results = [read_response(s, timeout=15) for s in flood]
    finally:
        for s in flood:
            s.close()
    assert all(closed for _, _, closed in results)
    assert sum(1 for status, _, _ in results if status == 408) == 300
    assert metric(guarded.url, "aiinfra_connections_timed_out_total") >= 300


def test_beyond_max_connections_a_request_gets_503(start_server, model_dir):
    srv = start_server(
        [f"server.model_uri={model_dir}", "server.max_connections=10", "server.access_log=null"], name="maxconn"
    )
    idle = [open_partial(srv.port) for _ in range(12)]
    try:
        r = httpx.post(f"{srv.url}{INFER}", content=infer_body("over"), timeout=10)
        assert r.status_code == 503
    finally:
        for s in idle:
            s.close()
    r = wait_for(
        lambda: (
            (x := httpx.post(f"{srv.url}{INFER}", content=infer_body("after"), timeout=10)).status_code == 200 and x
        ),
        timeout=10,
    )
    assert r.json()["id"] == "after"


@pytest.mark.slow
def test_sigterm_flips_readiness_first_then_drains_keep_alive_load(start_server, model_dir):
    srv = start_server(
        [
            f"server.model_uri={model_dir}",
            "server.shutdown_delay_s=2",
            "server.body_timeout_s=300",
            "server.graceful_timeout_s=600",  # a drain that waited for the stalled client would hang
            "server.access_log=null",
            "server.log_flush_interval_s=0.2",
        ],
        name="drain",
    )
    answered: dict[str, int] = {}
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def load(c: int) -> None:
        with httpx.Client(base_url=srv.url, timeout=60) as client:  # keep-alive
            i = 0
            while not stop.is_set():
                rid, rows = f"c{c}-{i}", 1 + i % 3
                i += 1
                try:
                    r = client.post(INFER, content=infer_body(rid, rows))
                except httpx.TransportError:  # the drain closed the connection; a new one is refused
                    return
                with lock:
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                    if r.status_code == 200:
                        assert r.json()["id"] == rid
                        answered[rid] = rows

    threads = [threading.Thread(target=load, args=(c,)) for c in range(6)]
    probe = httpx.Client(base_url=srv.url, timeout=10)
    assert probe.get("/v2/health/ready").status_code == 200  # its keep-alive connection is open
    stalled = open_partial(srv.port, body=b'{"instances": [[1, 2', declared=500, path="/invocations")
    for t in threads:
        t.start()
    wait_for(lambda: len(answered) >= 200, timeout=60)
    srv.proc.send_signal(signal.SIGTERM)
    # readiness flips at once, before the drain: the load balancer stops sending
    # (polled: the signal reaches the server's handler asynchronously; the delay is 2 s)
    ready = wait_for(lambda: (x := probe.get("/v2/health/ready")).status_code == 503 and x, timeout=1.5, interval=0.05)
    assert ready.json()["reason"] == "shutting down"
    # ... while predictions are still served during server.shutdown_delay_s
    during = probe.post(INFER, content=infer_body("during-delay"))
    assert during.status_code == 200
    answered["during-delay"] = 1
    probe.close()
    # the stalled body is answered 503 when the drain starts, not after graceful_timeout_s
    status, body, _ = read_response(stalled, timeout=60)
    stalled.close()
    assert status == 503 and "shutting down" in orjson.loads(body)["error"]
    try:
        rc = srv.proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the drain did not finish:\n{srv.text()}") from None
    stop.set()
    for t in threads:
        t.join()
    assert rc == 0, srv.text()
    assert set(statuses) <= {200, 503}, statuses  # 503: "shutting down" during the drain, never a 500
    # the drain completed: every answered row is in the prediction log, and only those
    table = read_predictions(srv.log_dir)
    logged: dict[str, int] = {}
    for rid in table.column("request_id").to_pylist():
        logged[rid] = logged.get(rid, 0) + 1
    assert logged == answered
