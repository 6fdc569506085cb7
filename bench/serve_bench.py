"""Serving benchmark: `aiinfra serve` vs `mlflow models serve` vs a bare Starlette endpoint.

One run, same machine, same model (one MLflow model directory whose artifacts hold the aiinfra model
under ``artifacts/model/``; MLflow serves it through a tensor-signature pyfunc), same load: wrk with
single-row POSTs, N connections, fixed duration. Prints requests/s, p50 and p99 per target and the
ratios the serving issue sets as targets (>= 10x mlflow, p99 < 25 ms, >= 60% of the bare ceiling).

    .venv/bin/python bench/serve_bench.py                      # 10 s per target, 16 connections
    .venv/bin/python bench/serve_bench.py --duration 20 --connections 32 --json results.json

Needs wrk (``apt-get install wrk``); without it a Python asyncio load generator is used, which is
itself CPU-bound and measures lower figures (the output says which one ran).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_models(work: Path, n_features: int, hidden: int) -> tuple[Path, Path]:
    """An aiinfra model directory and an MLflow pyfunc model (tensor signature) wrapping it."""
    import torch

    from aiinfra.models.mlp import MLPClassifier
    from aiinfra.models.model_dir import InferenceModel, save_model

    torch.manual_seed(0)
    features = [f"f{i}" for i in range(n_features)]
    net = MLPClassifier(n_features=n_features, n_classes=2, hidden=hidden, layers=2, dropout=0.0)
    model_dir = save_model(
        InferenceModel(net, n_features),
        work / "model_dir" / "model",
        component="mlp",
        model_cfg={"hidden": hidden, "layers": 2, "dropout": 0.0},
        features=features,
        classes=[0, 1],
        target="target",
    )
    import mlflow
    from mlflow.models import infer_signature

    mlflow_dir = work / "mlflow_model"
    x = np.zeros((2, n_features), dtype=np.float32)
    mlflow.pyfunc.save_model(
        path=str(mlflow_dir),
        python_model=str(REPO / "bench" / "serve_bench_pyfunc.py"),
        artifacts={"model": str(model_dir)},
        signature=infer_signature(x, np.zeros(2, dtype=np.int64)),
    )
    return model_dir, mlflow_dir


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"not ready after {timeout} s: {url}")


def post(url: str, body: bytes) -> dict:
    import urllib.request

    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def parse_duration(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)", text)
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def run_wrk(url: str, body: bytes, connections: int, duration: int, work: Path) -> dict:
    script = work / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body.decode())}\n"
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=duration + 60,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = parse_duration(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = parse_duration(re.search(r"\s99%\s+(\S+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    return {"rps": rps, "p50_ms": p50 * 1e3, "p99_ms": p99 * 1e3, "requests": total, "errors": errors}


async def _py_load(host: str, port: int, path: str, body: bytes, connections: int, duration: float) -> dict:
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []
    errors = 0
    end = time.monotonic() + duration

    async def conn() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        while time.monotonic() < end:
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
        writer.close()

    started = time.monotonic()
    await asyncio.gather(*(conn() for _ in range(connections)))
    elapsed = time.monotonic() - started
    lat = np.array(latencies)
    return {
        "rps": len(lat) / elapsed,
        "p50_ms": float(np.percentile(lat, 50) * 1e3),
        "p99_ms": float(np.percentile(lat, 99) * 1e3),
        "requests": len(lat),
        "errors": errors,
    }


def load(url: str, body: bytes, connections: int, duration: int, work: Path) -> dict:
    if shutil.which("wrk"):
        return run_wrk(url, body, connections, duration, work)
    m = re.match(r"http://([^:/]+):(\d+)(/.*)", url)
    return asyncio.run(_py_load(m.group(1), int(m.group(2)), m.group(3), body, connections, duration))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds of load per target")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--features", type=int, default=30)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument(
        "--targets",
        default="mlflow,aiinfra,aiinfra-invocations,aiinfra-2workers,bare,bare-empty",
        help="comma-separated subset",
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every target this many times, interleaved; the median run is reported",
    )
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    env = {
        **os.environ,
        "DO_NOT_TRACK": "1",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    work = Path(tempfile.mkdtemp(prefix="aiinfra-serve-bench-"))
    model_dir, mlflow_dir = build_models(work, args.features, args.hidden)
    project = work / "project"
    shutil.copytree(REPO / "conf", project / "conf")
    env["AIINFRA_PROJECT_DIR"] = str(project)

    rng = np.random.default_rng(0)
    row = [round(float(v), 4) for v in rng.normal(size=args.features)]
    v2_body = json.dumps(
        {"inputs": [{"name": "input", "shape": [1, args.features], "datatype": "FP32", "data": row}]}
    ).encode()
    mlflow_body = json.dumps({"inputs": [row]}).encode()

    def aiinfra(*overrides: str):
        return [
            str(BIN / "aiinfra"),
            "serve",
            f"server.model_uri={mlflow_dir}",
            f"server.log_dir={work / 'predlog'}",
            *overrides,
        ]

    targets = {
        # name: (command(port), readiness path, load path, body, label extractor)
        "mlflow": (
            lambda p: [
                str(BIN / "mlflow"),
                "models",
                "serve",
                "-m",
                str(mlflow_dir),
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(p),
                "-w",
                "1",
            ],
            "/ping",
            "/invocations",
            mlflow_body,
            lambda r: r["predictions"][0],
        ),
        "aiinfra": (
            lambda p: aiinfra(f"server.port={p}"),
            "/v2/health/ready",
            "/v2/models/mlflow_model/infer",
            v2_body,
            lambda r: r["outputs"][0]["data"][0],
        ),
        "aiinfra-invocations": (
            lambda p: aiinfra(f"server.port={p}"),
            "/v2/health/ready",
            "/invocations",
            mlflow_body,
            lambda r: r["predictions"][0],
        ),
        "aiinfra-2workers": (
            lambda p: aiinfra(f"server.port={p}", "server.workers=2"),
            "/v2/health/ready",
            "/v2/models/mlflow_model/infer",
            v2_body,
            lambda r: r["outputs"][0]["data"][0],
        ),
        "aiinfra-2threads": (
            lambda p: aiinfra(f"server.port={p}", "server.torch_threads=2"),
            "/v2/health/ready",
            "/v2/models/mlflow_model/infer",
            v2_body,
            lambda r: r["outputs"][0]["data"][0],
        ),
        # diagnostics: where the tail latency comes from
        "aiinfra-no-access-log": (
            lambda p: aiinfra(f"server.port={p}", "server.access_log=null"),
            "/v2/health/ready",
            "/v2/models/mlflow_model/infer",
            v2_body,
            lambda r: r["outputs"][0]["data"][0],
        ),
        "aiinfra-no-prediction-log": (
            lambda p: aiinfra(f"server.port={p}", "server.prediction_log=false"),
            "/v2/health/ready",
            "/v2/models/mlflow_model/infer",
            v2_body,
            lambda r: r["outputs"][0]["data"][0],
        ),
        "aiinfra-flush-5k": (
            lambda p: aiinfra(f"server.port={p}", "server.log_flush_rows=5000"),
            "/v2/health/ready",
            "/v2/models/mlflow_model/infer",
            v2_body,
            lambda r: r["outputs"][0]["data"][0],
        ),
        "aiinfra-flush-2k": (
            lambda p: aiinfra(f"server.port={p}", "server.log_flush_rows=2000"),
            "/v2/health/ready",
            "/v2/models/mlflow_model/infer",
            v2_body,
            lambda r: r["outputs"][0]["data"][0],
        ),
        "bare": (
            lambda p: [
                str(BIN / "uvicorn"),
                "serve_bench_bare:app",
                "--app-dir",
                str(REPO / "bench"),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--log-level",
                "warning",
                "--port",
                str(p),
            ],
            None,
            "/v2/models/mlflow_model/infer",
            v2_body,
            lambda r: r["outputs"][0]["data"][0],
        ),
    }
    targets["bare-empty"] = (targets["bare"][0], None, "/v2/models/mlflow_model/infer", v2_body, None)
    generator = "wrk 1 thread" if shutil.which("wrk") else "python asyncio (wrk not found)"
    print(
        f"model: MLP {args.features} features, 2 x {args.hidden} hidden; load: {generator}, "
        f"{args.connections} connections, {args.duration} s, single-row requests; {os.cpu_count()} CPUs"
    )
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    runs: dict[str, list[dict]] = {}
    labels: dict[str, object] = {}
    names = [t.strip() for t in args.targets.split(",") if t.strip()]
    for name in [n for _ in range(args.rounds) for n in names]:
        cmd, ready_path, path, body, label_of = targets[name]
        port = free_port()
        tenv = {**env, "BARE_MODEL_DIR": str(model_dir), "BARE_EMPTY": "1" if name == "bare-empty" else "0"}
        log_file = open(work / f"{name}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(cmd(port), env=tenv, stdout=log_file, stderr=subprocess.STDOUT, cwd=work)
        url = f"http://127.0.0.1:{port}"
        try:
            if ready_path:
                wait_ready(url + ready_path, proc)
            else:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        post(url + path, body)
                        break
                    except OSError:
                        if time.monotonic() > deadline or proc.poll() is not None:
                            raise
                        time.sleep(0.2)
            if label_of:
                labels[name] = label_of(post(url + path, body))
            load(url + path, body, args.connections, 2, work)  # warm-up
            runs.setdefault(name, []).append(load(url + path, body, args.connections, args.duration, work))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
            log_file.close()
        r = runs[name][-1]
        print(
            f"{name:<20} {r['rps']:>9.0f} req/s   p50 {r['p50_ms']:7.2f} ms   p99 {r['p99_ms']:7.2f} ms   "
            f"errors {r['errors']}",
            flush=True,
        )
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    # the median run (the lower middle one for an even count: no flattering)
    results = {name: sorted(rs, key=lambda r: r["rps"])[(len(rs) - 1) // 2] for name, rs in runs.items()}
    if args.rounds > 1:
        print(f"median of {args.rounds} runs:")
        for name, r in results.items():
            print(
                f"{name:<20} {r['rps']:>9.0f} req/s   p50 {r['p50_ms']:7.2f} ms   p99 {r['p99_ms']:7.2f} ms   "
                f"errors {r['errors']}"
            )
    if len(set(map(str, labels.values()))) > 1:
        print(f"WARNING: targets disagree on the prediction: {labels}")
    a, m, b = results.get("aiinfra"), results.get("mlflow"), results.get("bare")
    if a and m:
        print(f"aiinfra / mlflow models serve: {a['rps'] / m['rps']:.1f}x requests/s (target >= 10x)")
    if a and b:
        print(f"aiinfra / bare endpoint:       {100 * a['rps'] / b['rps']:.0f}% of the ceiling (target >= 60%)")
    if a:
        print(f"aiinfra p99:                   {a['p99_ms']:.1f} ms (target < 25 ms)")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "args": vars(args),
                    "generator": generator,
                    "results": results,
                    "runs": runs,
                    "labels": {k: str(v) for k, v in labels.items()},
                },
                indent=2,
            )
        )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
