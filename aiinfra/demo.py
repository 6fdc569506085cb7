"""``make demo`` / ``python -m aiinfra.demo``: the whole lifecycle on the bundled dataset.

1. ``dvc repro``: compose -> prepare -> train -> evaluate -> register -> monitor
2. ``aiinfra serve`` the champion; send the test split as single-row requests (each with its
   request id) and check every served prediction equals the model's offline prediction; send the
   true labels of those requests to the feedback endpoint; then a shifted copy (simulated drift)
3. stop the server (SIGTERM: it flushes the prediction log), then ``aiinfra monitor`` on the log
   with those labels (accuracy in production)
4. print where to look
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from aiinfra.data.prepared import PreparedData
from aiinfra.models.model_dir import Predictor
from aiinfra.runner import setup_environment


def _step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict, request_id: str | None = None) -> dict:
    headers = {"Content-Type": "application/json", **({"X-Request-ID": request_id} if request_id else {})}
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited early with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise SystemExit("the server did not become ready in time")


def main() -> int:
    setup_environment()  # inherited by dvc, the server and the monitor started below
    root = Path.cwd()
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    aiinfra = [sys.executable, "-m", "aiinfra"]

    _step("dvc repro: compose -> prepare -> train -> evaluate -> register -> monitor")
    subprocess.run([sys.executable, "-m", "dvc", "repro"], check=True, env=env)
    registration = json.loads((root / "models" / "registration.json").read_text())
    print(f"registered {registration['model_name']} v{registration['version']}: {registration['reason']}")

    data = PreparedData.open(root / "data" / "prepared")
    x, y = data.arrays("test")
    offline = Predictor.load(root / "models" / "model").predict_proba(x)

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_dir = root / "logs" / "predictions"
    _step(f"aiinfra serve on {base} (model models:/{registration['model_name']}@champion)")
    server = subprocess.Popen(
        [*aiinfra, "serve", f"server.port={port}", "server.log_flush_interval_s=1", "server.access_log=null"], env=env
    )  # a JSON line per request is noise here
    try:
        _wait_ready(f"{base}/v2/health/ready", server)
        served = []
        for i, row in enumerate(x):
            body = {"dataframe_split": {"columns": data.features, "data": [row.tolist()]}}
            served.append(_post(f"{base}/invocations", body, request_id=f"test-{i}")["probabilities"][0])
        served = np.asarray(served, dtype=np.float32)
        same = np.allclose(served, offline, atol=1e-5)
        print(
            f"{len(served)} single-row requests: served == offline predictions: {same} "
            f"(max abs diff {float(np.abs(served - offline).max()):.2e})"
        )
        if not same:
            return 1
        # the true outcomes arrive later: labels for those requests, by request id
        classes = np.asarray(data.classes)
        labels = [{"request_id": f"test-{i}", "label": classes[k].item()} for i, k in enumerate(y)]
        accepted = _post(f"{base}/v2/models/{registration['model_name']}/feedback", {"labels": labels})["accepted"]
        print(f"{accepted} labels sent to /v2/models/{registration['model_name']}/feedback (stored in logs/feedback/)")
        # simulated production drift: the same rows, half the features scaled up by 60%
        shifted = x.copy()
        shifted[:, : x.shape[1] // 2] *= 1.6
        for start in range(0, len(shifted), 16):
            _post(f"{base}/invocations", {"inputs": shifted[start : start + 16].tolist()})
        print(f"{len(shifted)} shifted rows served (simulated drift)")
    finally:
        server.send_signal(signal.SIGTERM)  # graceful: answers what it accepted, flushes the log
        server.wait(timeout=60)

    _step("aiinfra monitor: the prediction log against the training reference")
    report_dir = root / "reports" / "drift-production"
    status = subprocess.run(
        [*aiinfra, "monitor", f"monitor.report_dir={report_dir.relative_to(root)}", "monitor.feedback=logs/feedback"],
        env=env,
    )
    verdict_file = report_dir / "verdict.json"
    if verdict_file.is_file():
        verdict = json.loads(verdict_file.read_text())
        print(
            f"drift detected: {verdict.get('drift_detected')} (share {verdict.get('drift_share')}); "
            f"exit status {status.returncode}"
        )
        labelled = verdict.get("feedback") or {}
        if labelled.get("accuracy") is not None:
            print(f"accuracy on the {labelled['labelled_rows']} labelled rows of the log: {labelled['accuracy']:.4f}")
        elif labelled.get("rmse") is not None:  # a regression model
            print(
                f"on the {labelled['labelled_rows']} labelled rows of the log: "
                f"MAE {labelled['mae']:.4g}, RMSE {labelled['rmse']:.4g}"
            )

    _step("where to look")
    print(f"""\
  metrics (test split):     dvc metrics show            ({root / "metrics.json"})
  plots (curve, ROC, CM):   dvc plots show              (writes dvc_plots/index.html)
  runs, models, lineage:    .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db  (http://127.0.0.1:5000)
  model card:               {registration["model_card_html"]}
  drift report (pipeline):  reports/drift/  (HTML + JSON)
  drift report (served):    {report_dir.relative_to(root)}/  (HTML + JSON)
  prediction log:           {log_dir.relative_to(root)}/date=.../hour=.../*.parquet
  labels (feedback):        logs/feedback/date=.../*.parquet
  audit log:                logs/audit.jsonl""")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
