"""The aiinfra-airflow plugin package, installed as a user would (pip, real entry points), turns
this repository's own dvc.yaml into an Airflow DAG. Running the DAG with `dag.test()` needs
Airflow's own environment: the plugin's tests do that (plugins/aiinfra-airflow/tests)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import yaml

from aiinfra.testing import pip_install_target
from project_helpers import REPO, cli_env, init_git_dvc

PACKAGE = REPO / "plugins" / "aiinfra-airflow"


def test_export_airflow_writes_one_task_per_dvc_stage_in_dvc_order(project: Path, tmp_path: Path) -> None:
    init_git_dvc(project)
    site = pip_install_target([PACKAGE], tmp_path / "site")
    env = cli_env(PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    (project / "conf" / "airflow.yaml").write_text("schedule: '@daily'\nretries: 3\n")
    cmd = [sys.executable, "-m", "aiinfra", "export", "airflow", "--retries", "2", "--out", str(tmp_path / "dags")]
    proc = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dag_file = Path(proc.stdout.strip())
    text = dag_file.read_text()
    compile(text, str(dag_file), "exec")
    stages = next(
        ast.literal_eval(node.value)
        for node in ast.parse(text).body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "STAGES"
    )
    names = list(yaml.safe_load((project / "dvc.yaml").read_text())["stages"])
    assert [task for task, _, _ in stages] == names
    order = {task: i for i, (task, _, _) in enumerate(stages)}
    assert all(order[up] < order[task] for task, _, ups in stages for up in ups)  # upstream first
    assert dict((t, ups) for t, _, ups in stages)["train"]  # train waits for something (prepare)
    # each task is DVC's own `repro` of one stage; the config file's schedule, the flag's retries
    assert "dvc repro --single-item " in text and "'@daily'" in text and '"retries": 2' in text
    bad = subprocess.run(
        [sys.executable, "-m", "aiinfra", "export", "airflw"], cwd=project, env=env, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "airflow" in bad.stderr and "Traceback" not in bad.stderr
