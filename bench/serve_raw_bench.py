"""Raw-row serving benchmark: a mixed-type model (numbers with gaps, a category, a boolean, a date,
text; checked against its data contract and encoded per batch) against the all-numeric float path.

One run, same machine, side by side: an all-numeric model with the same number of input columns
(its preprocessing is the identity, so it is served as float rows) and the mixed-type model, each
under the same load (wrk, single-row POSTs, N connections, fixed duration), over /invocations
``dataframe_records`` and V2 (one tensor for the numeric model, one named input per column for the
mixed one). Prints requests/s, p50, p99 and the raw/numeric ratios; the target of issue 12 is the
raw path within 25% of the numeric one.

    .venv/bin/python bench/serve_raw_bench.py                       # 10 s per target, 16 connections
    .venv/bin/python bench/serve_raw_bench.py --duration 20 --rounds 3 --json raw.json

Needs wrk (a Python load generator is used without it, measuring lower figures).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "bench"), str(REPO / "tests" / "serving")]

from serve_bench import BIN, free_port, load, post, wait_ready  # noqa: E402

from raw_helpers import COLUMNS, make_raw_model, records, request_rows  # noqa: E402 (the real feature code)


def numeric_model(path: Path, n_features: int) -> Path:
    """An all-numeric model of ``n_features`` columns: no contract, float rows (the fast path)."""
    import torch

    from aiinfra.models.mlp import MLPClassifier
    from aiinfra.models.model_dir import InferenceModel, save_model

    torch.manual_seed(0)
    net = MLPClassifier(n_features=n_features, n_classes=2, hidden=8, layers=1, dropout=0.0)
    return save_model(
        InferenceModel(net, n_features),
        path,
        component="mlp",
        model_cfg={"hidden": 8, "layers": 1, "dropout": 0.0},
        features=list(COLUMNS),
        classes=[0, 1],
        target="target",
    )


def bodies() -> dict[str, bytes]:
    row = records(request_rows(1, seed=3))[0]
    numbers = {c: float(i + 1) for i, c in enumerate(COLUMNS)}
    datatypes = {"age": "FP64", "income": "FP64", "city": "BYTES", "member": "BOOL", "signup": "BYTES", "note": "BYTES"}
    return {
        "numeric-invocations": json.dumps({"dataframe_records": [numbers]}).encode(),
        "raw-invocations": json.dumps({"dataframe_records": [row]}).encode(),
        "numeric-v2": json.dumps(
            {"inputs": [{"name": "input", "shape": [1, 6], "datatype": "FP32", "data": list(numbers.values())}]}
        ).encode(),
        "raw-v2": json.dumps(
            {"inputs": [{"name": c, "shape": [1], "datatype": dt, "data": [row[c]]} for c, dt in datatypes.items()]}
        ).encode(),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds of load per target")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=1, help="interleaved runs per target; the median run is reported")
    ap.add_argument("--extra", default="", help="server overrides for both servers, comma-separated")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="aiinfra-raw-bench-"))
    models = {
        "numeric": numeric_model(work / "numeric" / "model", len(COLUMNS)),
        "raw": make_raw_model(work / "raw" / "model"),
    }
    project = work / "project"
    shutil.copytree(REPO / "conf", project / "conf")
    env = {**os.environ, "DO_NOT_TRACK": "1", "AIINFRA_PROJECT_DIR": str(project)}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("MLFLOW_TRACKING_URI", None)
    extra = [o for o in args.extra.split(",") if o]
    body = bodies()
    runs: dict[str, list[dict]] = {name: [] for name in body}
    for _ in range(args.rounds):
        for kind in ("numeric", "raw"):
            port = free_port()
            cmd = [str(BIN / "aiinfra"), "serve", f"server.model_uri={models[kind]}", f"server.port={port}"]
            cmd += [f"server.log_dir={work / 'predlog' / kind}", *extra]
            log = open(work / f"{kind}.log", "ab")  # noqa: SIM115
            proc = subprocess.Popen(cmd, cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT)
            url = f"http://127.0.0.1:{port}"
            try:
                wait_ready(f"{url}/v2/health/ready", proc)
                for route, path in (("invocations", "/invocations"), ("v2", "/v2/models/model/infer")):
                    name = f"{kind}-{route}"
                    post(url + path, body[name])  # answers 200 before any load
                    runs[name].append(load(url + path, body[name], args.connections, args.duration, work))
            finally:
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=60)
                log.close()
    results = {}
    for name, rs in runs.items():
        median = sorted(rs, key=lambda r: r["rps"])[len(rs) // 2]
        results[name] = median
        print(
            f"{name:22s} {median['rps']:8.0f} req/s   p50 {median['p50_ms']:7.2f} ms   "
            f"p99 {median['p99_ms']:7.2f} ms   errors {median['errors']}"
        )
    ratios = {}
    for route in ("invocations", "v2"):
        raw, num = results[f"raw-{route}"], results[f"numeric-{route}"]
        ratios[route] = {"rps": raw["rps"] / num["rps"], "p99": raw["p99_ms"] / num["p99_ms"]}
        print(
            f"raw / numeric ({route}): {ratios[route]['rps']:.0%} of the requests/s, "
            f"{ratios[route]['p99']:.1f}x the p99 (target: >= 75% of the requests/s)"
        )
    print(f"load: {'wrk' if shutil.which('wrk') else 'python'}, {args.connections} connections, {args.duration} s")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "ratios": ratios, "args": vars(args)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
