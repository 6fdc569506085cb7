"""Hydra multirun: `aiinfra train -m model.hidden=8,16` trains one model per value."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from project_helpers import cli_env, run_cli


@pytest.mark.slow
def test_sweep_trains_one_run_per_value_in_separate_job_dirs(project):
    run_cli(project, "prepare", check=True)
    proc = run_cli(project, "train", "-m", "model.hidden=8,16", "trainer.max_epochs=2", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted((project / ".aiinfra" / "multirun").glob("*/*/models/train_run.json"))
    assert len(runs) == 2
    run_ids = [json.loads(p.read_text())["run_id"] for p in runs]
    code = (
        "import mlflow, json, sys; c = mlflow.MlflowClient('sqlite:///mlflow.db');"
        "print(json.dumps([c.get_run(r).data.params['model.hidden'] for r in sys.argv[1:]]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *run_ids],
        cwd=project,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert sorted(json.loads(out.stdout.splitlines()[-1])) == ["16", "8"]


def test_a_typo_in_any_sweep_job_fails_before_the_first_run(project):
    proc = run_cli(project, "train", "-m", "model.hidden=8,16", "trainer.max_epoch=2,3")
    assert proc.returncode == 2 and "unknown config key 'trainer.max_epoch'" in proc.stderr
    assert not (project / ".aiinfra" / "multirun").exists()
