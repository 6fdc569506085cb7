"""Helpers for core tests: run the real CLI in temporary projects (imported by name; fixtures
live in conftest.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cli_env(project: Path | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AIINFRA_", "DVC_"))}
    env.update(DO_NOT_TRACK="1", PYTHONUNBUFFERED="1", GIT_PYTHON_REFRESH="quiet")
    # the venv's bin first: dvc.yaml stages call `aiinfra`, and DVC calls them through the shell
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def project_client(project: Path):
    """An MlflowClient on ``project``'s sqlite store, for both runs and the model registry.

    The registry URI is passed too: MLflow keeps a process-wide registry URI, and an in-process
    test that called ``mlflow.set_registry_uri`` would otherwise send this client's registry calls
    to that other test's store (seen in CI under random order as "Registered Model ... not found").
    """
    import mlflow

    uri = f"sqlite:///{project / 'mlflow.db'}"
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def run_cli(project: Path, *args: str, timeout: float = 300, check: bool = False, **env: str):
    """Run ``aiinfra ARGS`` as a user would, in ``project``; returns the CompletedProcess."""
    proc = subprocess.run(
        [sys.executable, "-m", "aiinfra", *args],
        cwd=project,
        env=cli_env(project, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"aiinfra {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def train_multirun(project: Path, *overrides: str, timeout: float = 400) -> subprocess.CompletedProcess:
    """``aiinfra train -m OVERRIDES`` (a Hydra multirun) in ``project``, as a user runs a sweep."""
    return subprocess.run(
        [sys.executable, "-m", "aiinfra", "train", "-m", *overrides],
        cwd=project,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


DDP_CPU = ("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2")  # two CPU processes over gloo


def init_git_dvc(root: Path) -> None:
    """Make ``root`` a git + DVC repository (DVC's Hydra composition on, as in the repo)."""
    env = cli_env()
    for cmd in (
        ["git", "init", "-q"],
        ["git", "config", "user.email", "t@example.com"],
        ["git", "config", "user.name", "test"],
    ):
        subprocess.run(cmd, cwd=root, check=True, env=env)
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "-q"], cwd=root, check=True, env=env)
    subprocess.run([*dvc, "config", "hydra.enabled", "true"], cwd=root, check=True, env=env)
    shutil.copy(REPO / ".gitignore", root / ".gitignore")
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=root, check=True, env=env)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(project: Path, *overrides: str) -> tuple[subprocess.Popen, str]:
    """``aiinfra serve`` on a free port in ``project``; stderr (the access log) goes to a file so a
    long test never blocks the server on a full pipe. Returns (process, base URL) once ready."""
    port = free_port()
    log = (project / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "aiinfra", "serve", f"server.port={port}", *overrides],
        cwd=project,
        env=cli_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, server, project / "server.log")
    return server, base


def wait_ready(base: str, server: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    """Wait until ``base``/v2/health/ready answers 200; fail with the server's output if it dies."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        assert server.poll() is None, log.read_text()[-4000:]
        try:
            with urllib.request.urlopen(f"{base}/v2/health/ready", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, "server not ready in time:\n" + log.read_text()[-4000:]
        time.sleep(0.3)


def dvc(project: Path, *args: str, timeout: float = 600) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=project,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"dvc {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr
