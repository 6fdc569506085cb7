"""Serving test helpers: real model directories and real `aiinfra serve` processes on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
AIINFRA = [sys.executable, "-m", "aiinfra"]
FEATURES = ["a", "b", "c", "d"]


def make_model(path: Path, *, seed: int = 0, classes=(0, 1), features=FEATURES) -> Path:
    """A small real MLP saved in the aiinfra model-directory format (what `aiinfra train` writes)."""
    import torch

    from aiinfra.models.mlp import MLPClassifier
    from aiinfra.models.model_dir import InferenceModel, save_model

    torch.manual_seed(seed)
    net = MLPClassifier(n_features=len(features), n_classes=len(classes), hidden=8, layers=1, dropout=0.0)
    save_model(
        InferenceModel(net, len(features)),
        path,
        component="mlp",
        model_cfg={"hidden": 8, "layers": 1, "dropout": 0.0},
        features=list(features),
        classes=list(classes),
        target="target",
    )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(project: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AIINFRA_"))}
    env.update(DO_NOT_TRACK="1", PYTHONUNBUFFERED="1", AIINFRA_PROJECT_DIR=str(project))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


class ServerProcess:
    """`aiinfra serve ...` as a subprocess; output goes to a file (a full pipe would stall it)."""

    def __init__(self, project: Path, overrides: list[str], env: dict[str, str] | None = None, name: str = "server"):
        self.port = free_port()
        self.project = project
        self.log_dir = project / "logs" / f"{name}-{self.port}" / "predictions"
        self.output = project / f"{name}-{self.port}.out"
        self.args = [*AIINFRA, "serve", f"server.port={self.port}", f"server.log_dir={self.log_dir}", *overrides]
        self.env = env_for(project, **(env or {}))
        self.url = f"http://127.0.0.1:{self.port}"
        # the readiness check's TLS verification (httpx's `verify`): a TLS server sets its context
        self.verify: Any = True
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> ServerProcess:
        self._out = open(self.output, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.args, cwd=self.project, env=self.env, stdout=self._out, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.text()}")
            try:
                if httpx.get(f"{self.url}/v2/health/ready", verify=self.verify, timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"server not ready after {timeout} s:\n{self.text()}")

    def text(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._out.close()
        return rc


def register_versions(tracking_uri: str, name: str, model_dirs: list[Path], artifact_root: Path) -> list[str]:
    """Log each aiinfra model directory (named ``model``) as an MLflow model and register it.

    MLflow copies an artifact directory under its base name: ``artifacts/model/`` is what
    ``resolve_model`` looks for.
    """
    import mlflow
    from mlflow.pyfunc import PythonModel

    class _Stub(PythonModel):  # the server reads artifacts/model/, never this object
        def predict(self, context, model_input, params=None):
            raise NotImplementedError

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    exp = mlflow.MlflowClient().create_experiment("serving-tests", artifact_location=artifact_root.as_uri())
    mlflow.set_experiment(experiment_id=exp)
    versions = []
    for d in model_dirs:
        assert d.name == "model", d
        info = mlflow.pyfunc.log_model(
            name="model", python_model=_Stub(), artifacts={"model": str(d)}, registered_model_name=name
        )
        versions.append(str(info.registered_model_version))
    return versions
