"""Fixtures for the training tests: one prepared synthetic dataset per session, copied into fresh
projects (the top-level ``project`` fixture: repo conf/ + a migrated MLflow store), and an
in-process ``aiinfra`` runner (imports torch/Lightning once per session instead of per call)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from project_helpers import REPO, cli_env


@pytest.fixture(scope="session")
def prepared_synthetic(tmp_path_factory) -> Path:
    """``aiinfra prepare source=synthetic source.rows=4000`` run once (real CLI, subprocess)."""
    root = tmp_path_factory.mktemp("prepared-synthetic")
    shutil.copytree(REPO / "conf", root / "conf")
    subprocess.run(
        [sys.executable, "-m", "aiinfra", "prepare", "source=synthetic", "source.rows=4000"],
        cwd=root,
        env=cli_env(),
        check=True,
        capture_output=True,
        timeout=300,
    )
    return root / "data" / "prepared"


@pytest.fixture
def tproject(project: Path, prepared_synthetic: Path, monkeypatch) -> Path:
    """A project with the synthetic data already prepared, as the current directory; the
    config's source is synthetic (so `aiinfra train` needs no source override)."""
    shutil.copytree(prepared_synthetic, project / "data" / "prepared")
    cfg = project / "conf" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("  - source: breast_cancer", "  - source: synthetic"))
    for key in ("MLFLOW_TRACKING_URI", "AIINFRA_MULTIRUN", "AIINFRA_PARENT_RUN_ID"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(project)
    return project


@pytest.fixture
def aiinfra_main(capsys):
    """Run ``aiinfra ARGS`` in this process; returns (exit code, stdout, stderr)."""
    from aiinfra.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
