"""Data-parallel training for real: two CPU processes (gloo) through `trainer=ddp`, inside a
Hydra multirun (`-m`), reaching the validation quality of one process; rank 0 alone tracks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from project_helpers import cli_env

COMMON = ["trainer.max_epochs=4", "trainer.early_stopping.enabled=false", "seed=3"]


@pytest.mark.slow
def test_ddp_two_cpu_processes_in_a_multirun_match_one_process(tproject, aiinfra_main):
    code, _, err = aiinfra_main("train", *COMMON)
    assert code == 0, err
    single = json.loads((tproject / "models" / "train_run.json").read_text())

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "aiinfra",
            "train",
            "-m",
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            *COMMON,
            "model.hidden=64",
        ],
        cwd=tproject,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Starting with 2 processes" in proc.stdout + proc.stderr
    runs = sorted((tproject / ".aiinfra" / "multirun").glob("*/*/models/train_run.json"))
    assert len(runs) == 1
    ddp = json.loads(runs[0].read_text())
    assert ddp["epochs"] == 4
    # same quality: each process saw half of every epoch, the gradients were averaged
    assert ddp["metrics"]["val_acc"] >= single["metrics"]["val_acc"] - 0.02
    assert ddp["metrics"]["val_acc"] > 0.85

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tproject / 'mlflow.db'}")
    exp = client.get_experiment_by_name("aiinfra-demo")
    all_runs = client.search_runs([exp.experiment_id])
    # the single-process run and exactly one DDP run: the second rank opened no run of its own
    assert len(all_runs) == 2
    ddp_run = client.get_run(ddp["run_id"])
    assert ddp_run.data.params["trainer.strategy"] == "ddp_spawn" and ddp_run.data.params["trainer.devices"] == "2"
    assert [m.step for m in client.get_metric_history(ddp["run_id"], "val_acc")] == [0, 1, 2, 3]


@pytest.mark.slow
def test_plain_ddp_is_refused_inside_a_multirun(tproject):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "aiinfra",
            "train",
            "-m",
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.strategy=ddp",
            "trainer.devices=2",
            "trainer.max_epochs=1",
        ],
        cwd=tproject,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "cannot run inside a Hydra sweep" in proc.stderr and "ddp_spawn" in proc.stderr


def test_sweeps_refuse_plain_ddp_except_under_the_slurm_launcher():
    from aiinfra.errors import ConfigError
    from aiinfra.training.checks import check_sweep_trainer
    from aiinfra.training.schema import LightningTrainerConfig

    check_sweep_trainer(LightningTrainerConfig(strategy="ddp_spawn"))
    with pytest.raises(ConfigError, match="ddp_spawn"):
        check_sweep_trainer(LightningTrainerConfig(strategy="ddp"))
    # SLURM starts the processes under submitit: nothing is re-launched
    check_sweep_trainer(
        LightningTrainerConfig(strategy="ddp"),
        launcher="hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
    )
    check_sweep_trainer(LightningTrainerConfig(strategy="ddp"), launcher="submitit_slurm")
    with pytest.raises(ConfigError):
        check_sweep_trainer(LightningTrainerConfig(strategy="ddp"), launcher="submitit_local")


@pytest.mark.slow
def test_torchrun_starts_ranks_and_only_rank_zero_tracks(tproject):
    """The multi-node path on one machine: torchrun starts two processes (RANK 0 and 1), each runs
    the whole `aiinfra train`; Lightning's ddp joins them; rank 1 opens no MLflow run."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "aiinfra",
            "train",
            "trainer=multinode",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.num_nodes=1",
            *COMMON,
        ],
        cwd=tproject,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads((tproject / "models" / "train_run.json").read_text())
    assert summary["epochs"] == 4 and summary["metrics"]["val_acc"] > 0.85

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tproject / 'mlflow.db'}")
    exp = client.get_experiment_by_name("aiinfra-demo")
    runs = client.search_runs([exp.experiment_id])
    assert [r.info.run_id for r in runs] == [summary["run_id"]]
    assert runs[0].data.params["trainer.strategy"] == "ddp"
