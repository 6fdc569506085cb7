"""The exported DAG runs for real, in Airflow's own environment (built by scripts/airflow_env.sh):
`airflow db migrate` in a temporary AIRFLOW_HOME, then `dag.test()` of the whole pipeline on a
real project (real DVC, Lightning, MLflow sqlite store). Then the monitor's retrain policy runs the
same DAG through `aiinfra airflow-trigger`, and `--mode trigger` queues a run for a scheduler.

The tests of this module share one pipeline run (about 45 s here) and go in file order.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import AirflowHome, dag_stages, new_project

STAGES = ["compose", "prepare", "train", "evaluate", "register", "monitor"]


def list_runs(home: AirflowHome, dag_id: str) -> list[dict]:
    """The DAG's runs as Airflow's own CLI reads them from its metadata database."""
    out = home.run("dags", "list-runs", dag_id, "--output", "json").stdout
    # Airflow's log lines share stdout ("[info ] ..."): the table is the last line that parses
    for line in reversed(out.splitlines()):
        if line.startswith("["):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise AssertionError(f"no JSON list of runs in:\n{out[-3000:]}")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, airflow_env):
    root = tmp_path_factory.mktemp("airflow") / "proj"
    project = new_project(root)
    dag_file = Path(project.cli("export", "airflow", check=True).stdout.strip())
    home = AirflowHome(airflow_env, root.parent / "airflow-home", dag_file.parent)
    started = time.monotonic()
    home.run("db", "migrate")
    migrate_s = time.monotonic() - started
    # a small python in Airflow's interpreter: import the DAG file, dag.test() (the plugin's run_dag.py)
    import aiinfra_airflow.run_dag as run_dag

    started = time.monotonic()
    proc = subprocess.run(
        [str(home.python), run_dag.__file__, str(dag_file), "aiinfra-demo"],
        env=home.env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    wall = time.monotonic() - started
    print(f"airflow db migrate {migrate_s:.1f} s; dag.test() of the pipeline {wall:.1f} s", file=sys.stderr)
    assert proc.returncode == 0, f"{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # what the run left, read now: the other tests of this module add runs and versions
    result["versions"] = model_versions(root)
    result["runs"] = list_runs(home, "aiinfra-demo")
    result["lock"] = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    status = subprocess.run([sys.executable, "-m", "dvc", "status"], cwd=root, capture_output=True, text=True)
    result["dvc_status"] = status.stdout
    return project, home, dag_file, result


def model_versions(root: Path) -> list[str]:
    import mlflow

    registration = json.loads((root / "models" / "registration.json").read_text())
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    return sorted(str(v.version) for v in client.search_model_versions(f"name='{registration['model_name']}'"))


@pytest.fixture(scope="module")
def retrained(pipeline):
    """A monitor run on shifted data with the retrain policy set to run the DAG (mode test)."""
    project, home, _, _ = pipeline
    root = project.root
    meta = json.loads((root / "data" / "prepared" / "meta.json").read_text())
    current = pd.read_parquet(root / "data" / "prepared" / "test.parquet")
    current[meta["features"]] = current[meta["features"]] * 3.0 + 1.0  # a real shift of every feature
    current.to_parquet(root / "shifted.parquet")
    runs_before = list_runs(home, "aiinfra-demo")
    lock_before = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    versions_before = model_versions(root)
    train_run_before = json.loads((root / "models" / "train_run.json").read_text())["run_id"]
    command = '["{python}","-m","aiinfra","airflow-trigger","--mode","test"]'
    started = time.monotonic()
    proc = project.run(
        "monitor",
        "monitor.current=shifted.parquet",
        "monitor.fail_on_drift=false",
        "monitor.retrain.policy=retrain",
        f"monitor.retrain.command={command}",
        env=home.environ,
    )
    print(f"monitor + retrain through the DAG {time.monotonic() - started:.1f} s", file=sys.stderr)
    verdict = json.loads((root / "reports" / "drift" / "verdict.json").read_text())
    runs_after = list_runs(home, "aiinfra-demo")
    lock_after = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    new_runs = [r for r in runs_after if r["run_id"] not in {b["run_id"] for b in runs_before}]
    after = {
        "versions_before": versions_before,
        "versions": model_versions(root),
        "train_run_before": train_run_before,
        "registration": json.loads((root / "models" / "registration.json").read_text()),
        "meta": json.loads((root / "data" / "prepared" / "meta.json").read_text()),
    }
    return proc, verdict, new_runs, lock_before, lock_after, after


def test_dag_test_runs_every_stage(pipeline):
    project, _, dag_file, result = pipeline
    assert [t for t, _, _ in dag_stages(dag_file)] == STAGES
    assert result["state"] == "success"
    assert result["tasks"] == {stage: "success" for stage in STAGES}
    root = project.root
    meta = json.loads((root / "data" / "prepared" / "meta.json").read_text())
    assert meta["target"] and (root / "data" / "prepared" / "train.parquet").is_file()
    assert (root / "models" / "model" / "weights.pt").is_file()
    metrics = json.loads((root / "metrics.json").read_text())
    assert 0.5 < metrics["test_accuracy"] <= 1.0, metrics
    assert result["versions"] == ["1"]  # register ran: a version in the project's MLflow registry
    # the stages ran through DVC: dvc.lock records every one and DVC sees nothing left to do
    assert set(result["lock"]) == set(STAGES)
    assert "up to date" in result["dvc_status"], result["dvc_status"]
    # the run is in Airflow's metadata database, as a scheduler's would be
    assert [(r["run_id"], r["state"]) for r in result["runs"]] == [(result["run_id"], "success")]


def test_monitor_retrain_policy_runs_the_dag(retrained):
    proc, verdict, new_runs, lock_before, lock_after, after = retrained
    assert verdict["drift_detected"] is True, proc.stderr
    outcome = verdict["retrain"]
    assert outcome["ok"] is True and outcome["exit_code"] == 0, outcome
    assert outcome["command"][-4:] == ["aiinfra", "airflow-trigger", "--mode", "test"]
    assert Path(outcome["window"]).parent.name == "feedback"
    assert [r["state"] for r in new_runs] == ["success"]  # one more DAG run, recorded by Airflow
    # The exported window (the shifted rows, labelled) is in data/feedback, prepare's dependency:
    # the DAG's prepare task re-ran through DVC and added the rows to the data, which changed
    # prepare's outputs, so DVC re-ran train on them and register registered the new model.
    assert lock_after["prepare"]["deps"] != lock_before["prepare"]["deps"]
    assert after["meta"]["feedback_rows"] > 0, after["meta"]
    assert lock_after["prepare"]["outs"] != lock_before["prepare"]["outs"]
    assert lock_after["train"]["outs"] != lock_before["train"]["outs"]
    registration = after["registration"]
    assert registration["run_id"] != after["train_run_before"]  # a new training run
    before = after["versions_before"]
    assert after["versions"] == sorted([*before, registration["version"]]), (before, after["versions"])
    assert registration["version"] not in before


def test_trigger_mode_queues_a_run_for_the_scheduler(pipeline):
    project, home, _, _ = pipeline
    before = list_runs(home, "aiinfra-demo")
    project.cli("airflow-trigger", env=home.environ, check=True)  # --mode trigger is the default
    after = list_runs(home, "aiinfra-demo")
    new = [r for r in after if r["run_id"] not in {b["run_id"] for b in before}]
    assert [(r["state"], r["run_id"].startswith("manual__")) for r in new] == [("queued", True)]
