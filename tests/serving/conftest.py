"""Serving fixtures: real model directories and real `aiinfra serve` processes on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
AIINFRA = [sys.executable, "-m", "aiinfra"]
FEATURES = ["a", "b", "c", "d"]


def make_model(path: Path, *, seed: int = 0, classes=(0, 1), features=FEATURES) -> Path:
    """A small real MLP saved in the aiinfra model-directory format (what `aiinfra train` writes)."""
    import torch

    from aiinfra.models.artifact import InferenceModel, save_model
    from aiinfra.models.mlp import MLPClassifier

    torch.manual_seed(seed)
    net = MLPClassifier(n_features=len(features), n_classes=len(classes), hidden=8, layers=1, dropout=0.0)
    save_model(InferenceModel(net, len(features)), path, component="mlp",
               model_cfg={"hidden": 8, "layers": 1, "dropout": 0.0}, features=list(features),
               classes=list(classes), target="target")
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

    def __init__(self, project: Path, overrides: list[str], env: dict[str, str] | None = None,
                 name: str = "server"):
        self.port = free_port()
        self.project = project
        self.log_dir = project / "logs" / f"{name}-{self.port}" / "predictions"
        self.output = project / f"{name}-{self.port}.out"
        self.args = [*AIINFRA, "serve", f"server.port={self.port}", f"server.log_dir={self.log_dir}", *overrides]
        self.env = env_for(project, **(env or {}))
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> ServerProcess:
        self._out = open(self.output, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(self.args, cwd=self.project, env=self.env, stdout=self._out,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.text()}")
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
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


@pytest.fixture(scope="session")
def serving_project(tmp_path_factory) -> Path:
    """A project directory (the repo's conf/) whose logs and data stay in a temp dir."""
    root = tmp_path_factory.mktemp("serving-project")
    shutil.copytree(REPO / "conf", root / "conf")
    return root


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return make_model(tmp_path_factory.mktemp("models") / "model")


@pytest.fixture(scope="module")
def server(serving_project, model_dir):
    """One shared server for the read-mostly protocol tests of a module."""
    srv = ServerProcess(serving_project, [f"server.model_uri={model_dir}", "server.log_flush_interval_s=0.2",
                                         "server.max_rows=100"],
                        name="shared").start()
    yield srv
    assert srv.stop() == 0, srv.text()


@pytest.fixture
def start_server(serving_project):
    """Factory: start a server with overrides; stopped (SIGTERM) at the end of the test."""
    started: list[ServerProcess] = []

    def start(overrides: list[str], env: dict[str, str] | None = None, name: str = "server") -> ServerProcess:
        srv = ServerProcess(serving_project, overrides, env, name).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture(scope="session")
def model_factory():
    return make_model


@pytest.fixture(scope="session")
def predictor(model_dir):
    from aiinfra.models.artifact import Predictor

    return Predictor.load(model_dir)
