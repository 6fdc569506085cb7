"""Soak: mixed valid and hostile traffic against `aiinfra serve` at about half its measured capacity,
with one SIGTERM + restart and one hot reload in the middle.

Reports requests sent, answers by status, connection errors (the restart window), rows answered,
rows logged, rows dropped (the server's counter), p99 latency per minute and the server's RSS per
minute (peak). Targets: zero 5xx, rows logged + rows dropped == rows answered, RSS flat after warm-up.

    .venv/bin/python bench/soak.py                       # 10 minutes (the issue's figure)
    .venv/bin/python bench/soak.py --duration 180 --out bench/soak_results.txt

The load generator is Python (httpx, asyncio) on the same machine as the server: capacity is
measured with the same client first, so "half the capacity" is half of what this client reaches.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FEATURES = [f"f{i}" for i in range(8)]
ADMIN = "soak-admin-0123456789abcdef"
PREDICT = "soak-predict-0123456789abcdef"
KEYS = f"ops:admin:{ADMIN};app:predict:{PREDICT}"
INFER = "/v2/models/model/infer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_model(path: Path) -> Path:
    import torch

    from aiinfra.models.mlp import MLPClassifier
    from aiinfra.models.model_dir import InferenceModel, save_model

    torch.manual_seed(0)
    net = MLPClassifier(n_features=len(FEATURES), n_classes=2, hidden=32, layers=2, dropout=0.0)
    return save_model(
        InferenceModel(net, len(FEATURES)),
        path,
        component="mlp",
        model_cfg={"hidden": 32, "layers": 2, "dropout": 0.0},
        features=FEATURES,
        classes=[0, 1],
        target="target",
    )


def valid_body(rid: str, rows: int) -> bytes:
    data = np.round(np.random.default_rng(len(rid)).normal(size=(rows, len(FEATURES))), 4).tolist()
    return json.dumps(
        {"id": rid, "inputs": [{"name": "input", "shape": [rows, len(FEATURES)], "datatype": "FP32", "data": data}]}
    ).encode()


def hostile_requests() -> list[tuple[str, bytes, dict[str, str]]]:
    """(path, body, headers) of requests that must each end in a 4xx."""
    j = {"Content-Type": "application/json"}
    t = {"name": "input", "shape": [1, len(FEATURES)], "datatype": "FP32", "data": [1.0] * len(FEATURES)}
    deep = b"[" * 5000 + b"]" * 5000
    return [
        (INFER, json.dumps({"inputs": [{**t, "datatype": ["FP32"]}]}).encode(), j),
        (INFER, json.dumps({"inputs": [{**t, "name": {"x": 1}}]}).encode(), j),
        (INFER, json.dumps({"inputs": [{**t, "shape": [0, 10**30], "data": []}]}).encode(), j),
        (INFER, json.dumps({"inputs": [{**t, "shape": [2**62, 2**62]}]}).encode(), j),
        (INFER, b'{"inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP32", "data": ' + deep + b"}]}", j),
        (INFER, json.dumps({"id": "x" * 200, "inputs": [t]}).encode(), j),
        (INFER, json.dumps({"id": 17, "inputs": [t]}).encode(), j),
        (INFER, json.dumps({"inputs": [t]}).encode(), {**j, "X-Request-ID": "has space"}),
        (
            INFER,
            b'{"inputs": [{"name":"input","shape":[1,8],"datatype":"FP32","parameters":{"binary_data_size":32}}]}'
            + b"\x00" * 8,
            {"Inference-Header-Content-Length": "99999"},
        ),
        (INFER, b"{not json", j),
        ("/invocations", ("f0,f1\n" + "9" * 200_000 + ",1\n").encode(), {"Content-Type": "text/csv"}),
        ("/invocations", b",".join(f.encode() for f in FEATURES) + b"\r1,2\r,3\n", {"Content-Type": "text/csv"}),
        ("/invocations", json.dumps({"instances": [[1, 2], [3]]}).encode(), j),
        ("/invocations", json.dumps({"dataframe_split": {"columns": 5, "data": "x"}}).encode(), j),
        ("/v2/models/model/feedback", json.dumps({"labels": [{"request_id": ["x"], "label": {}}]}).encode(), j),
    ]


class Server:
    def __init__(self, project: Path, model: Path, log_dir: Path, port: int):
        self.port, self.url = port, f"http://127.0.0.1:{port}"
        self.args = [
            str(BIN / "aiinfra"),
            "serve",
            f"server.model_uri={model}",
            f"server.port={port}",
            f"server.log_dir={log_dir}",
            "server.access_log=null",
            "server.reload_interval_s=0",
            "server.shutdown_delay_s=1",
            "server.log_flush_interval_s=2",
        ]
        self.env = {**os.environ, "DO_NOT_TRACK": "1", "AIINFRA_API_KEYS": KEYS, "AIINFRA_PROJECT_DIR": str(project)}
        self.project = project
        self.proc: subprocess.Popen | None = None
        self.output = project / "server.out"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.args,
            cwd=self.project,
            env=self.env,
            stdout=open(self.output, "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"server did not start:\n{self.output.read_text()}")

    def dropped(self) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        m = re.search(r"^aiinfra_prediction_log_dropped_rows_total (\S+)$", text, re.M)
        return float(m.group(1)) if m else 0.0

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=120)

    def rss(self) -> int:
        try:
            return psutil.Process(self.proc.pid).memory_info().rss
        except psutil.Error:
            return 0


class Stats:
    def __init__(self) -> None:
        self.sent = 0
        self.status: dict[int, int] = {}
        self.transport_errors = 0
        self.rows_answered = 0
        self.latency_by_minute: dict[int, list[float]] = {}
        self.rss_by_minute: dict[int, int] = {}
        self.unexpected: list[str] = []
        self.restart_s = 0.0


async def measure_capacity(url: str, seconds: float, clients: int = 16) -> float:
    done = 0
    end = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {PREDICT}"}

    async def one(c: int) -> None:
        nonlocal done
        async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers) as client:
            i = 0
            while time.monotonic() < end:
                r = await client.post(INFER, content=valid_body(f"cap-{c}-{i}", 1))
                i += 1
                done += r.status_code == 200

    await asyncio.gather(*(one(c) for c in range(clients)))
    return done / seconds


async def soak(server: Server, duration: float, rate: float, hostile_share: float, stats: Stats) -> None:
    rnd = random.Random(0)
    hostile = hostile_requests()
    t0 = time.monotonic()
    events = {"sigterm": duration / 3, "reload": 2 * duration / 3}
    sem = asyncio.Semaphore(256)
    client = httpx.AsyncClient(
        base_url=server.url,
        timeout=30,
        headers={"Authorization": f"Bearer {PREDICT}"},
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
    )
    n = 0
    tasks: set[asyncio.Task] = set()

    async def send(i: int) -> None:
        async with sem:
            minute = int((time.monotonic() - t0) // 60)
            if rnd.random() < hostile_share:
                path, body, headers, rows = (*rnd.choice(hostile), 0)
            else:
                rows = 1 + i % 3
                path, body, headers = INFER, valid_body(f"soak-{i}", rows), {}
            stats.sent += 1
            start = time.perf_counter()
            try:
                r = await client.post(path, content=body, headers=headers)
            except httpx.TransportError:
                stats.transport_errors += 1  # the restart window: never accepted, nothing to log
                return
            stats.latency_by_minute.setdefault(minute, []).append(time.perf_counter() - start)
            stats.status[r.status_code] = stats.status.get(r.status_code, 0) + 1
            if r.status_code == 200:
                if rows == 0:
                    stats.unexpected.append(f"hostile request answered 200: {path} {body[:80]!r}")
                else:
                    stats.rows_answered += len(r.json()["outputs"][0]["data"])
            elif r.status_code >= 500 and r.status_code != 503:
                stats.unexpected.append(f"{r.status_code} on {path}: {r.text[:200]}")

    dropped = 0.0
    last_rss = 0.0
    while (now := time.monotonic() - t0) < duration:
        if now - last_rss >= 1:
            last_rss = now
            minute = int(now // 60)
            stats.rss_by_minute[minute] = max(stats.rss_by_minute.get(minute, 0), server.rss())
        if "sigterm" in events and now >= events["sigterm"]:
            del events["sigterm"]
            dropped += server.dropped()
            rc = await asyncio.to_thread(server.stop)
            print(f"[{now:6.1f} s] SIGTERM: exit {rc}; restarting", flush=True)
            # the same client: its connections to the old process fail (counted), new ones reach the new one
            await asyncio.to_thread(server.start)
            n = int((time.monotonic() - t0) * rate)  # nothing is sent while no server is up: no burst after
            stats.restart_s = time.monotonic() - t0 - now
            print(f"[{time.monotonic() - t0:6.1f} s] restarted", flush=True)
            continue
        if "reload" in events and now >= events["reload"]:
            del events["reload"]
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as admin:
                r = await admin.post("/admin/reload?force=1", headers={"X-API-Key": ADMIN})
            print(f"[{now:6.1f} s] reload: {r.status_code} {r.json().get('model_version')}", flush=True)
        target = int(now * rate)
        while n < target:
            task = asyncio.create_task(send(n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        await asyncio.sleep(0.005)
    if tasks:
        await asyncio.gather(*tasks)
    await client.aclose()
    stats.dropped_before_final = dropped


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=600, help="seconds of soak (the issue asks for 600)")
    ap.add_argument("--share", type=float, default=0.5, help="rate as a share of the measured capacity")
    ap.add_argument("--hostile", type=float, default=0.2, help="share of hostile requests")
    ap.add_argument("--capacity-seconds", type=float, default=8)
    ap.add_argument("--out", help="append the report to this file")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="aiinfra-soak-"))
    project = work / "project"
    shutil.copytree(REPO / "conf", project / "conf")
    model = build_model(work / "models" / "model")
    log_dir = work / "predictions"
    server = Server(project, model, log_dir, free_port())
    server.start()
    capacity = asyncio.run(measure_capacity(server.url, args.capacity_seconds))
    rate = capacity * args.share
    # the capacity run's rows are logged too: count them out of the comparison by id prefix
    print(f"capacity {capacity:.0f} req/s (this client, 16 connections); soak at {rate:.0f} req/s", flush=True)
    stats = Stats()
    t_start = time.time()
    asyncio.run(soak(server, args.duration, rate, args.hostile, stats))
    dropped = stats.dropped_before_final + server.dropped()
    rc = server.stop()

    import pyarrow.compute as pc

    from aiinfra.serving.predlog import read_predictions

    table = read_predictions(log_dir)
    soak_rows = pc.sum(pc.starts_with(table["request_id"], "soak-").cast("int64")).as_py() or 0
    p99 = {m: float(np.percentile(v, 99) * 1000) for m, v in sorted(stats.latency_by_minute.items())}
    rss = {m: round(v / 2**20, 1) for m, v in sorted(stats.rss_by_minute.items())}
    five = sum(v for k, v in stats.status.items() if k >= 500 and k != 503)
    lines = [
        f"soak {time.strftime('%Y-%m-%d %H:%M', time.gmtime(t_start))} UTC: {args.duration:.0f} s "
        f"({os.cpu_count()} cores, server and client on one machine)",
        f"  capacity (Python client, 16 connections): {capacity:.0f} req/s; soak rate {rate:.0f} req/s "
        f"({args.share:.0%}), hostile share {args.hostile:.0%}",
        f"  requests sent: {stats.sent}; answered by status: {dict(sorted(stats.status.items()))}; "
        f"connection errors (restart window): {stats.transport_errors}; "
        f"SIGTERM to ready again: {stats.restart_s:.1f} s",
        f"  5xx other than 503: {five}; unexpected answers: {len(stats.unexpected)}",
        f"  rows answered: {stats.rows_answered}; rows logged: {soak_rows}; rows dropped (counted): {dropped:.0f}; "
        f"logged + dropped == answered: {soak_rows + dropped == stats.rows_answered}",
        f"  p99 latency by minute (ms): {', '.join(f'{m}: {v:.1f}' for m, v in p99.items())}",
        f"  server RSS peak by minute (MiB): {', '.join(f'{m}: {v}' for m, v in rss.items())}",
        f"  final SIGTERM exit code: {rc}",
    ]
    lines += [f"  unexpected: {u}" for u in stats.unexpected[:10]]
    report = "\n".join(lines)
    print(report)
    if args.out:
        with open(args.out, "a") as f:
            f.write(report + "\n\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if five == 0 and not stats.unexpected and soak_rows + dropped == stats.rows_answered else 1


if __name__ == "__main__":
    raise SystemExit(main())
