"""Sweeps: `-m` in parallel through the Hydra joblib launcher; Optuna search with `aiinfra tune`
(each trial an MLflow child run of the study's run; best config printed and saved)."""

from __future__ import annotations

import json

import pytest
import yaml

from project_helpers import project_client, train_multirun

EPOCHS = ("trainer.max_epochs=2",)  # each sweep job: two epochs, enough to prove it trained


@pytest.mark.slow
def test_joblib_launcher_runs_sweep_jobs_in_parallel_processes(tproject):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    proc = train_multirun(tproject, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "model.hidden=8,16", *EPOCHS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in proc.stdout + proc.stderr
    runs = sorted((tproject / ".aiinfra" / "multirun").glob("*/*/models/train_run.json"))
    assert len(runs) == 2
    # each job ran in its own worker process
    pids = {
        line.rsplit("(pid ", 1)[1].rstrip(")")
        for line in (proc.stdout + proc.stderr).splitlines()
        if "train stage phases" in line
    }
    assert len(pids) == 2 and all(p.isdigit() for p in pids)
    assert len({json.loads(r.read_text())["run_id"] for r in runs}) == 2


@pytest.mark.slow
def test_tune_runs_optuna_trials_as_child_runs_and_saves_the_best(tproject, capsys):
    pytest.importorskip("optuna")
    from aiinfra.training.tune import main

    code = main(
        [
            "--trials",
            "3",
            "--study",
            "t1",
            "model.hidden=choice(8, 32)",
            "model.lr=tag(log, interval(1e-3, 1e-2))",
            "trainer.max_epochs=2",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    best = yaml.safe_load((tproject / "reports" / "best_params.yaml").read_text())
    assert best["completed"] == 3 and best["metric"] == "val_acc" and best["direction"] == "maximize"
    assert set(best["best_params"]) == {"model.hidden", "model.lr"}
    assert best["best_params"]["model.hidden"] in (8, 32) and 1e-3 <= best["best_params"]["model.lr"] <= 1e-2
    assert f"best val_acc={best['best_value']:.4f}" in out and "aiinfra train" in out
    assert (tproject / best["model_dir"] / "model.json").is_file()

    client = project_client(tproject)
    exp = client.get_experiment_by_name("aiinfra-demo")
    children = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{best['mlflow_parent_run_id']}'"
    )
    assert len(children) == 3
    values = [c.data.metrics["val_acc"] for c in children]
    assert best["best_value"] == pytest.approx(max(values))
    parent = client.get_run(best["mlflow_parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.metrics["best_val_acc"] == pytest.approx(max(values))


def test_tune_without_a_search_dimension_is_a_clear_error(tproject, capsys):
    pytest.importorskip("optuna")
    from aiinfra.training.tune import main

    assert main(["model.hidden=32"]) == 2
    assert "nothing to search" in capsys.readouterr().err


@pytest.mark.slow
def test_submitit_local_launcher_runs_the_sweep_as_submitted_jobs(tproject):
    """The cluster extra, without a cluster: submitit's local executor runs each job as a
    separately submitted process, as submitit_slurm would on SLURM."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    proc = train_multirun(
        tproject,
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10",
        "model.hidden=8,16",
        *EPOCHS,
        "data.batch_size=64",  # tiny data: enough optimizer steps to learn in two epochs
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Submitit 'local' sweep output dir" in proc.stdout + proc.stderr
    runs = sorted((tproject / ".aiinfra" / "multirun").glob("*/*/models/train_run.json"))
    assert len(runs) == 2
    assert all(json.loads(r.read_text())["metrics"]["val_acc"] > 0.5 for r in runs)
    # submitit kept each job's own log next to its outputs
    assert list((tproject / ".aiinfra" / "multirun").glob("*/.submitit/*/*_log.out"))
