"""Private prediction logs: serving requests/s with the log's hashing and encryption on vs off.

Two servers of the same mixed-type model in one run, identical but for ``server.log_privacy``:
``plain`` (every column kept, plaintext parts) and ``private`` (``hash`` on ``request_id`` and
``city``, Parquet modular encryption of every part, kms=env). ``request_id`` is distinct on every
row, the worst case for the per-distinct-value hashing. Load (wrk, single-row raw POSTs to
/invocations, N connections) alternates between the two in short bursts, so drift in the machine's
load hits both alike; the median of the per-pair ratios is reported (target of issue 15: the
private server within 10% of the plain one's requests/s). Afterwards the private log is checked to
hold encrypted parts only (else the comparison would be of nothing).

    .venv/bin/python bench/private_log_bench.py                     # 6 pairs of 8 s, 16 connections
    .venv/bin/python bench/private_log_bench.py --pairs 10 --duration 10 --json out.json
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "bench"), str(REPO / "tests" / "serving")]

from serve_bench import BIN, free_port, load, post, wait_ready  # noqa: E402

from raw_helpers import make_raw_model, records, request_rows  # noqa: E402 (the real feature code)

PRIVATE = [
    "server.log_privacy.columns={request_id:hash,city:hash}",
    "server.log_privacy.encrypt=true",
]


def part_cost(rows: int = 5000, repeats: int = 7) -> dict[str, float]:
    """The writer thread's work per part, in process: build and write one ``rows``-row part of
    single-row requests (distinct request ids), plain vs hashed (request_id + one column) vs
    encrypted vs both; the median ms of ``repeats`` parts. This is the whole extra cost: nothing
    changes on the request path."""
    import time

    import numpy as np

    from aiinfra.serving.predlog import PredictionLog
    from aiinfra.serving.privacy import LogPrivacy
    from aiinfra.serving.schema import HttpServerConfig, LogPrivacyConfig

    features = [f"f{i}" for i in range(6)]
    hashed = {"request_id": "hash", "f0": "hash"}
    configs = {
        "plain": None,
        "hash 2 columns": LogPrivacyConfig(columns=hashed),
        "encrypt": LogPrivacyConfig(encrypt=True),
        "hash 2 + encrypt": LogPrivacyConfig(columns=hashed, encrypt=True),
    }
    x = np.random.default_rng(0).random((rows, len(features))).astype(np.float32)
    out = {}
    for name, privacy_cfg in configs.items():
        privacy = None
        if privacy_cfg is not None:
            privacy = LogPrivacy.from_config(HttpServerConfig(log_privacy=privacy_cfg), features)
        log = PredictionLog(tempfile.mkdtemp(prefix="aiinfra-part-cost-"), features, flush_rows=10**9, privacy=privacy)
        times = []
        for rep in range(repeats):
            for i in range(rows):
                log.append(f"{rep}-{i:x}-{os.getpid()}", "model", "1", x[i : i + 1], np.zeros(1, int), np.ones(1))
            started = time.perf_counter()
            log.flush()
            times.append(time.perf_counter() - started)
        log.close()
        out[name] = sorted(times)[len(times) // 2] * 1000
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=8, help="seconds of load per burst")
    ap.add_argument("--pairs", type=int, default=6, help="alternating plain/private bursts")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--control", action="store_true", help="A/A: the 'private' server plain too (the noise floor)")
    ap.add_argument("--skip-part-cost", action="store_true", help="only the HTTP comparison")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="aiinfra-private-bench-"))
    model = make_raw_model(work / "model")
    project = work / "project"
    shutil.copytree(REPO / "conf", project / "conf")
    env = {**os.environ, "DO_NOT_TRACK": "1", "AIINFRA_PROJECT_DIR": str(project)}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("MLFLOW_TRACKING_URI", None)
    env["AIINFRA_LOG_HMAC_KEY"] = os.environ["AIINFRA_LOG_HMAC_KEY"] = os.urandom(32).hex()
    master = "footer:" + base64.b64encode(os.urandom(32)).decode()
    env["AIINFRA_LOG_MASTER_KEYS"] = os.environ["AIINFRA_LOG_MASTER_KEYS"] = master
    costs = {} if args.skip_part_cost else part_cost()
    for name, ms in costs.items():
        print(f"writer thread, one 5,000-row part, {name:17s} {ms:6.1f} ms  ({ms / 5:.2f} ms per 1,000 rows)")
    body = json.dumps({"dataframe_records": [records(request_rows(1, seed=3))[0]]}).encode()

    servers = {}
    for kind, extra in (("plain", []), ("private", [] if args.control else PRIVATE)):
        port = free_port()
        cmd = [str(BIN / "aiinfra"), "serve", f"server.model_uri={model}", f"server.port={port}"]
        cmd += [f"server.log_dir={work / 'predlog' / kind}", f"server.feedback_dir={work / 'fb' / kind}"]
        cmd += ["server.access_log=null", *extra]
        out = open(work / f"{kind}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(cmd, cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT)
        servers[kind] = (proc, f"http://127.0.0.1:{port}/invocations", out)
    runs: dict[str, list[dict]] = {"plain": [], "private": []}
    try:
        for proc, url, _ in servers.values():
            wait_ready(url.replace("/invocations", "/v2/health/ready"), proc)
            post(url, body)
        for i in range(args.pairs):
            order = ("plain", "private") if i % 2 == 0 else ("private", "plain")
            for kind in order:
                runs[kind].append(load(servers[kind][1], body, args.connections, args.duration, work))
    finally:
        for proc, _, out in servers.values():
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
            out.close()

    parts = sorted((work / "predlog" / "private").rglob("part-*.parquet"))
    encrypted = sum(p.read_bytes()[-4:] == b"PARE" for p in parts)
    plain_parts = len(list((work / "predlog" / "plain").rglob("part-*.parquet")))
    ratios = [b["rps"] / a["rps"] for a, b in zip(runs["plain"], runs["private"], strict=True)]
    results = {}
    for kind, rs in runs.items():
        bursts = " ".join(f"{r['rps']:.0f}" for r in rs)
        median = sorted(rs, key=lambda r: r["rps"])[len(rs) // 2]
        results[kind] = median
        print(
            f"{kind:8s} median {median['rps']:8.0f} req/s   p50 {median['p50_ms']:6.2f} ms   "
            f"p99 {median['p99_ms']:6.2f} ms   errors {sum(r['errors'] for r in rs)}   "
            f"bursts {bursts}"
        )
    ratio = statistics.median(ratios)
    print(
        f"private / plain: median of {len(ratios)} pairs {ratio:.1%} of the requests/s "
        f"(pairs: {' '.join(f'{r:.0%}' for r in ratios)}; target >= 90%)"
    )
    print(f"parts written: plain {plain_parts}, private {len(parts)} ({encrypted} encrypted)")
    tool = "wrk" if shutil.which("wrk") else "python"
    print(f"load: {tool}, {args.connections} connections, {args.duration} s bursts")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json:
        data = {"results": results, "pair_ratios": ratios, "ratio": ratio, "part_ms": costs, "args": vars(args)}
        Path(args.json).write_text(json.dumps(data, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    if args.control:
        print("control run (A/A): both servers plain; the ratio is the noise floor of this machine")
        return 0
    return 0 if encrypted == len(parts) > 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
