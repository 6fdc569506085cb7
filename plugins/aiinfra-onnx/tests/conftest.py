from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pytest


def train_model(path: Path, steps: int = 60) -> Path:
    """A real aiinfra model directory: an MLP fitted for a few steps on breast cancer (about 1 s)."""
    import torch
    from sklearn.datasets import load_breast_cancer

    from aiinfra.models.model_dir import InferenceModel, build_network, save_model

    data = load_breast_cancer(as_frame=True)
    x = torch.tensor(data.data.to_numpy(), dtype=torch.float32)
    y = torch.tensor(data.target.to_numpy())
    cfg = {"hidden": 16, "layers": 2, "dropout": 0.0}
    torch.manual_seed(0)
    model = InferenceModel(build_network("mlp", cfg, x.shape[1], 2), x.shape[1])
    model.scaler.fit(x)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return save_model(
        model.eval(),
        path,
        component="mlp",
        model_cfg=cfg,
        features=list(data.data.columns),
        classes=[0, 1],
        target="target",
    )


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return train_model(tmp_path_factory.mktemp("model") / "model")


@pytest.fixture(scope="session")
def rows() -> np.ndarray:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer().data.astype(np.float32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``aiinfra serve`` as a real subprocess on 127.0.0.1; stopped with SIGTERM."""

    def __init__(self, project, server: str, model: Path, *extra: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [
            "serve",
            f"server={server}",
            f"server.model_uri={model}",
            f"server.port={self.port}",
            "server.prediction_log=false",
            "server.reload_interval_s=0",
            "server.access_log=null",
            *extra,
        ]
        self.proc = project.popen(*args)

    def wait(self, timeout: float = 90) -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.proc.stdout.read()}")
            try:
                if httpx.get(self.url + "/v2/health/ready", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError("server did not become ready")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.stdout.read() if self.proc.stdout else ""
