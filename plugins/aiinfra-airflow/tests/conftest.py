from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aiinfra.project_template import DVC_YAML, PROJECT_CONF_DIR
from aiinfra.testing import AiinfraProject, make_project

PACKAGE = Path(__file__).resolve().parents[1]
ENV_SCRIPT = PACKAGE / "scripts" / "airflow_env.sh"


def new_project(root: Path, max_epochs: int = 2) -> AiinfraProject:
    """A real project: aiinfra's full conf/ and the standard dvc.yaml (as `aiinfra init` writes
    them), git + DVC, MLflow in a sqlite file inside it; short training."""
    project = make_project(root, conf=PROJECT_CONF_DIR, pythonpath=[])
    shutil.copy(DVC_YAML, root / "dvc.yaml")
    cpu = root / "conf" / "trainer" / "cpu.yaml"
    text = cpu.read_text()
    assert "max_epochs: 30" in text, "the packaged trainer changed: update the test's short-training edit"
    cpu.write_text(text.replace("max_epochs: 30", f"max_epochs: {max_epochs}"))
    return project


@pytest.fixture
def project(tmp_path: Path) -> AiinfraProject:
    return new_project(tmp_path / "proj")


def dag_stages(dag_file: Path) -> list[tuple[str, str, list[str]]]:
    """The STAGES table of an exported DAG file, read without importing Airflow."""
    for node in ast.parse(dag_file.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "STAGES":
            return ast.literal_eval(node.value)
    raise AssertionError(f"no STAGES in {dag_file}")


@pytest.fixture(scope="session")
def airflow_env() -> Path:
    """Airflow's own environment, built by the plugin's script (cached: $AIINFRA_AIRFLOW_ENV or
    plugins/aiinfra-airflow/.airflow-env; a fresh build took about 80 s here)."""
    target = os.environ.get("AIINFRA_AIRFLOW_ENV") or str(PACKAGE / ".airflow-env")
    started = time.monotonic()
    proc = subprocess.run(["bash", str(ENV_SCRIPT), target], capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, f"airflow_env.sh failed:\n{proc.stderr[-4000:]}"
    env = Path(proc.stdout.strip().splitlines()[-1])
    print(f"airflow env {env} ready in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return env


class AirflowHome:
    """A temporary AIRFLOW_HOME (sqlite metadata db) with the project's dags/ as its dags folder."""

    def __init__(self, env: Path, home: Path, dags: Path):
        self.env_dir = env
        self.airflow = env / "bin" / "airflow"
        self.python = env / "bin" / "python"
        self.environ = {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIINFRA_AIRFLOW_ENV": str(env),
        }

    def env(self) -> dict[str, str]:
        """For a process of Airflow's env: no PYTHONPATH (the test's points at aiinfra-airflow's target dir)."""
        base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI")}
        return {**base, **self.environ}

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.airflow), *args], env=self.env(), capture_output=True, text=True, timeout=timeout
        )
        assert proc.returncode == 0, (
            f"airflow {' '.join(args)}: {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
        return proc
