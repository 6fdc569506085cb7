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


def run_cli(project: Path, *args: str, timeout: float = 300, check: bool = False, **env: str):
    """Run ``aiinfra ARGS`` as a user would, in ``project``; returns the CompletedProcess."""
    proc = subprocess.run([sys.executable, "-m", "aiinfra", *args], cwd=project, env=cli_env(project, **env),
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"aiinfra {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def init_git_dvc(root: Path) -> None:
    """Make ``root`` a git + DVC repository (DVC's Hydra composition on, as in the repo)."""
    env = cli_env()
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "t@example.com"],
                ["git", "config", "user.name", "test"]):
        subprocess.run(cmd, cwd=root, check=True, env=env)
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "-q"], cwd=root, check=True, env=env)
    subprocess.run([*dvc, "config", "hydra.enabled", "true"], cwd=root, check=True, env=env)
    shutil.copy(REPO / ".gitignore", root / ".gitignore")
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=root, check=True, env=env)
