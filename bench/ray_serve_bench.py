"""Ray Serve benchmark: `aiinfra serve` (1 process) vs `server=ray` with 1 replica vs autoscaling.

One run, same machine, same model (bench/serve_bench.py's MLP, single-row V2 infer POSTs), same
load generator (wrk, 1 thread, as serve_bench.py; a Python one without wrk): requests/s, p50 and
p99 at 16 and 64 connections per target; then, with autoscaling on (1..2 replicas), the time from a
load step (64 connections) to the second replica's first answer, and every request's status while
replicas are added and removed. Ray's overhead is the plain server's req/s over Ray's at 1 replica
(target from issue 14: the Ray path within 3x).

    .venv/bin/python bench/ray_serve_bench.py                 # 8 s per point
    .venv/bin/python bench/ray_serve_bench.py --duration 15 --json results.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from serve_bench import BIN, build_models, free_port, load, wait_ready  # noqa: E402


def _plain(project: Path, model: Path, body: bytes, conns: list[int], duration: int, work: Path, env) -> dict:
    port = free_port()
    cmd = [
        str(BIN / "aiinfra"),
        "serve",
        f"server.model_uri={model}",
        f"server.port={port}",
        "server.access_log=null",
        f"server.log_dir={work / 'log-plain'}",
    ]
    proc = subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", proc)
        url = f"http://127.0.0.1:{port}/v2/models/model/infer"
        load(url, body, 16, 2, work)  # warm-up
        return {c: load(url, body, c, duration, work) for c in conns}
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _replicas(app: str) -> int:
    from ray import serve

    status = serve.status().applications.get(app)
    return 0 if status is None else status.deployments["AiinfraServer"].replica_states.get("RUNNING", 0)


def _ray_config(project: Path, model: Path, port: int, work: Path, *overrides: str):
    from aiinfra.runner import load_config

    os.chdir(project)
    return load_config(
        [
            "server=ray",
            f"server.model_uri={model}",
            f"server.port={port}",
            "server.access_log=null",
            f"server.log_dir={work / 'log-ray'}",
            *overrides,
        ]
    )


def _step_to_second_replica(url: str, body: bytes, work: Path, duration: int) -> dict:
    """64 connections switched on at t=0; a prober notes which replica answers; then idle until 1."""
    import httpx

    seen: dict[str, float] = {}
    statuses: list[int] = []
    stop = threading.Event()

    def probe() -> None:
        with httpx.Client(timeout=30) as c:
            while not stop.is_set():
                try:
                    r = c.post(url, content=body, headers={"Content-Type": "application/json"})
                    statuses.append(r.status_code)
                    seen.setdefault(r.headers.get("x-aiinfra-replica", "?"), time.monotonic())
                except httpx.HTTPError:
                    statuses.append(-1)
                time.sleep(0.02)

    timeline: list[tuple[float, int]] = []

    def watch() -> None:
        while not stop.is_set():
            timeline.append((round(time.monotonic() - t_start, 1), _replicas("bench-auto")))
            time.sleep(1.0)

    t_start = time.monotonic()
    threading.Thread(target=watch, daemon=True).start()
    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    time.sleep(1.0)
    t0 = time.monotonic()
    result: dict = {}
    loader = threading.Thread(target=lambda: result.update(load(url, body, 64, duration, work)), daemon=True)
    loader.start()
    loader.join()
    second = sorted(seen.values())[1] - t0 if len(seen) >= 2 else None
    t_idle = time.monotonic()
    while _replicas("bench-auto") > 1 and time.monotonic() - t_idle < 120:
        time.sleep(0.5)
    scaled_in_s = time.monotonic() - t_idle
    stop.set()
    prober.join(timeout=30)
    return {
        "load_64": result,
        "seconds_to_second_replica_answer": second,
        "replicas_seen": len(seen),
        "scale_in_s": scaled_in_s,
        "probe_requests": len(statuses),
        "probe_failures": sum(1 for s in statuses if s != 200),
        "step_at_s": round(t0 - t_start, 1),
        "replicas_timeline": [p for i, p in enumerate(timeline) if i == 0 or p[1] != timeline[i - 1][1]],
    }


async def _empty_asgi(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


def _empty_app():
    return _empty_asgi


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=8, help="seconds of load per point")
    ap.add_argument("--features", type=int, default=30)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    out_json = Path(args.json).resolve() if args.json else None  # the Ray runs chdir to the project
    conns = [16, 64]
    env = {**os.environ, "DO_NOT_TRACK": "1", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    work = Path(tempfile.mkdtemp(prefix="aiinfra-ray-bench-"))
    model_dir, _ = build_models(work, args.features, args.hidden)
    project = work / "project"
    shutil.copytree(REPO / "conf", project / "conf")
    os.environ["AIINFRA_PROJECT_DIR"] = env["AIINFRA_PROJECT_DIR"] = str(project)
    row = [round(float(v), 4) for v in np.random.default_rng(0).normal(size=args.features)]
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, args.features], "datatype": "FP32", "data": row}]})
    body = body.encode()
    results: dict = {"generator": "wrk 1 thread" if shutil.which("wrk") else "python asyncio", "cpus": os.cpu_count()}
    results["plain"] = _plain(project, model_dir, body, conns, args.duration, work, env)

    os.environ.setdefault("RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S", "0.5")
    os.environ.setdefault("RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S", "0.5")
    import ray
    from ray import serve

    from aiinfra.serving.ray_server import application

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    url = f"http://127.0.0.1:{port}/v2/models/model/infer"
    try:
        cfg = _ray_config(project, model_dir, port, work, "server.autoscale=false", "server.replica_cpus=1")
        serve.run(application(cfg, str(work / "metrics-1")), name="bench-one", route_prefix="/")
        load(url, body, 16, 2, work)
        results["ray_1_replica"] = {c: load(url, body, c, args.duration, work) for c in conns}
        serve.delete("bench-one")
        # Ray Serve's own ceiling here: an empty ASGI app behind the same proxy (no aiinfra at all)
        empty = serve.deployment(
            serve.ingress(_empty_app)(),
            name="Empty",
            max_ongoing_requests=256,
            logging_config={"enable_access_log": False, "log_level": "WARNING"},
        )
        serve.run(empty.bind(), name="bench-empty", route_prefix="/")
        load(f"http://127.0.0.1:{port}/", b"", 16, 2, work)
        results["ray_empty_app"] = {c: load(f"http://127.0.0.1:{port}/", b"", c, args.duration, work) for c in conns}
        serve.delete("bench-empty")
        cfg = _ray_config(
            project,
            model_dir,
            port,
            work,
            "server.replica_cpus=1",
            "server.autoscaling.min_replicas=1",
            "server.autoscaling.max_replicas=2",
            "server.autoscaling.target_ongoing_requests=16",
            "server.autoscaling.upscale_delay_s=1",
            "server.autoscaling.downscale_delay_s=5",
            "server.autoscaling.look_back_period_s=2",
        )
        serve.run(application(cfg, str(work / "metrics-2")), name="bench-auto", route_prefix="/")
        results["ray_autoscaling"] = _step_to_second_replica(url, body, work, max(args.duration, 45))
    finally:
        serve.shutdown()
        ray.shutdown()

    print(f"load generator: {results['generator']}, {results['cpus']} CPUs, {args.duration} s per point")
    for name in ("plain", "ray_1_replica", "ray_empty_app"):
        for c in conns:
            r = results[name][c]
            print(
                f"{name:<15} c={c:<3} {r['rps']:>8.0f} req/s   p50 {r['p50_ms']:>7.2f} ms"
                f"   p99 {r['p99_ms']:>8.2f} ms   errors {r['errors']}"
            )
    a = results["ray_autoscaling"]
    r = a["load_64"]
    print(
        f"{'ray_autoscale':<15} c=64  {r['rps']:>8.0f} req/s   p50 {r['p50_ms']:>7.2f} ms"
        f"   p99 {r['p99_ms']:>8.2f} ms   errors {r['errors']}"
    )
    second = a["seconds_to_second_replica_answer"]
    print(f"load step -> second replica answering: {second:.1f} s" if second else "no second replica answered")
    print(f"back to 1 replica after the load: {a['scale_in_s']:.1f} s")
    print(f"RUNNING replicas over time (s, n; load step at {a['step_at_s']} s): {a['replicas_timeline']}")
    print(f"probe requests during scale out and in: {a['probe_requests']}, failed: {a['probe_failures']}")
    for c in conns:
        ratio = results["plain"][c]["rps"] / results["ray_1_replica"][c]["rps"]
        print(f"Ray overhead at c={c}: plain / ray 1 replica = {ratio:.2f}x req/s (target <= 3x)")
        ceiling = results["ray_1_replica"][c]["rps"] / results["ray_empty_app"][c]["rps"]
        print(f"  aiinfra on Ray / Ray Serve's empty-app ceiling at c={c}: {ceiling:.0%}")
    if out_json:
        out_json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
