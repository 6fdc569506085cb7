"""Fixtures for the monitor: temp projects with a reference and a prediction log in the serving
contract's layout, configs composed from the repo's conf/, and the real CLI."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("DO_NOT_TRACK", "1")
REPO = Path(__file__).resolve().parents[2]
START = dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.timezone.utc)


def env_for(project: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AIINFRA_", "DVC_"))}
    env.update(DO_NOT_TRACK="1", PYTHONUNBUFFERED="1", AIINFRA_PROJECT_DIR=str(project))
    env.update(extra)
    return env


class MonProject:
    """A temp project: conf/ copied from the repo, data/prepared with a reference, logs/."""

    def __init__(self, root: Path):
        self.root = root
        self.prepared = root / "data" / "prepared"
        self.logs = root / "logs" / "predictions"
        self.reports = root / "reports" / "drift"

    def reference(self, scenario: str = "no_drift", rows: int = 3000, seed: int = 1) -> None:
        from aiinfra.monitoring import scenarios

        scenarios.write_reference(self.prepared, scenarios.make(scenario, rows, seed=seed, reference=True))

    def log(self, scenario: str = "no_drift", rows: int = 4000, hours: int = 3, seed: int = 2,
            start: dt.datetime = START, **kw) -> list[str]:
        from aiinfra.monitoring import scenarios

        return scenarios.write_prediction_log(self.logs, scenarios.make(scenario, rows, seed=seed), start,
                                              hours=hours, **kw)

    def cfg(self, *overrides: str):
        """The validated config, as the CLI builds it (paths made absolute into this project)."""
        from aiinfra.config.compose import compose
        from aiinfra.config.validate import validate
        from aiinfra.plugins.manager import get_plugins

        base = [f"paths.prepared={self.prepared}", f"paths.logs={self.root / 'logs'}",
                f"paths.data={self.root / 'data'}", f"monitor.report_dir={self.reports}"]
        return validate(compose([*base, *overrides], self.root / "conf"), get_plugins().registry)

    def cli(self, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "aiinfra", *args], cwd=self.root, env=env_for(self.root, **env),
                              capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def mon(tmp_path: Path) -> MonProject:
    root = tmp_path / "proj"
    root.mkdir()
    shutil.copytree(REPO / "conf", root / "conf")
    return MonProject(root)


@pytest.fixture(scope="session")
def evidently_loaded():
    """Import evidently once per session (~5 s), telemetry off."""
    os.environ["DO_NOT_TRACK"] = "1"
    import evidently  # noqa: F401

    return True


def frame(columns: dict[str, np.ndarray]):
    import pandas as pd

    return pd.DataFrame(columns)
