"""Benchmark server=onnx against the built-in server=http on the same model (measured, not modelled).

    python plugins/aiinfra-onnx/bench.py            # with aiinfra-onnx installed (or on PYTHONPATH)

1. in-process: predict_proba of the torch Predictor vs OnnxPredictor (1 row, 1,000 rows);
2. HTTP: both servers as real `aiinfra serve` subprocesses on 127.0.0.1, the same model directory;
   single-row V2 infer requests sequentially (latency) and from 8 client threads (throughput), and
   1,000-row requests. Client and servers share the machine's cores.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent / "tests"))
from conftest import Server, train_model  # noqa: E402  (the tests' real model and server helpers)


def timeit(fn, repeat: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def in_process(model_dir: Path, rows: np.ndarray) -> dict:
    import torch

    from aiinfra.models.model_dir import Predictor
    from aiinfra_onnx.export import export
    from aiinfra_onnx.runtime import OnnxPredictor

    torch.set_num_threads(1)
    t, o = Predictor.load(model_dir), OnnxPredictor(export(model_dir, model_dir / "bench.onnx"), threads=1)
    one, many = rows[:1], np.resize(rows, (1000, rows.shape[1])).astype(np.float32)
    return {
        "torch_1row_us": 1e6 * timeit(lambda: t.predict_proba(one), 2000),
        "onnx_1row_us": 1e6 * timeit(lambda: o.predict_proba(one), 2000),
        "torch_1000rows_us": 1e6 * timeit(lambda: t.predict_proba(many), 200),
        "onnx_1000rows_us": 1e6 * timeit(lambda: o.predict_proba(many), 200),
    }


def body(x: np.ndarray) -> bytes:
    return json.dumps(
        {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist()}]}
    ).encode()


def http_bench(url: str, rows: np.ndarray) -> dict:
    one = body(rows[:1])
    big = body(np.resize(rows, (1000, rows.shape[1])).astype(np.float32))
    headers = {"content-type": "application/json"}
    infer = f"{url}/v2/models/model/infer"
    with httpx.Client() as client:
        for _ in range(200):  # warm-up
            client.post(infer, content=one, headers=headers)
        lat = []
        for _ in range(2000):
            s = time.perf_counter()
            r = client.post(infer, content=one, headers=headers)
            lat.append(time.perf_counter() - s)
            assert r.status_code == 200
        s = time.perf_counter()
        for _ in range(50):
            assert client.post(infer, content=big, headers=headers).status_code == 200
        big_s = (time.perf_counter() - s) / 50

    def worker(n: int) -> None:
        with httpx.Client() as c:
            for _ in range(n):
                assert c.post(infer, content=one, headers=headers).status_code == 200

    s = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(worker, [250] * 8))
    conc = 2000 / (time.perf_counter() - s)
    lat.sort()
    return {
        "p50_ms": 1e3 * statistics.median(lat),
        "p99_ms": 1e3 * lat[int(0.99 * len(lat))],
        "seq_rps": len(lat) / sum(lat),
        "conc8_rps": conc,
        "rows1000_ms": 1e3 * big_s,
    }


def main() -> None:
    from sklearn.datasets import load_breast_cancer

    from aiinfra.testing import make_project

    tmp = Path(tempfile.mkdtemp(prefix="aiinfra-onnx-bench-"))
    try:
        model_dir = train_model(tmp / "model")
        rows = load_breast_cancer().data.astype(np.float32)
        print(
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}"
        )
        print("model: MLP 30 -> 16 -> 16 -> 2 (breast cancer), torch 1 thread, onnxruntime 1 thread")
        for k, v in in_process(model_dir, rows).items():
            print(f"in-process {k}: {v:.1f}")
        project = make_project(tmp / "project", git=False, dvc=False)
        for server in ("http", "onnx"):
            srv = Server(project, server, model_dir).wait()
            try:
                res = http_bench(srv.url, rows)
            finally:
                srv.stop()
            print(f"server={server}: " + ", ".join(f"{k} {v:.2f}" for k, v in res.items()))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
