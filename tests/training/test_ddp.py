"""Data-parallel training for real: two CPU processes (gloo) through `trainer=ddp`, inside a
Hydra multirun (`-m`), reaching the validation quality of one process; rank 0 alone tracks; the
ranks train disjoint shards and hold identical weights after every step."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest

from project_helpers import DDP_CPU, cli_env, project_client, train_multirun

COMMON = ["trainer.max_epochs=4", "trainer.early_stopping.enabled=false", "seed=3"]


@pytest.mark.slow
def test_ddp_two_cpu_processes_in_a_multirun_match_one_process(tproject, aiinfra_main):
    code, _, err = aiinfra_main("train", *COMMON)
    assert code == 0, err
    single = json.loads((tproject / "models" / "train_run.json").read_text())

    proc = train_multirun(tproject, *DDP_CPU, *COMMON, "model.hidden=64")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Starting with 2 processes" in proc.stdout + proc.stderr
    runs = sorted((tproject / ".aiinfra" / "multirun").glob("*/*/models/train_run.json"))
    assert len(runs) == 1
    ddp = json.loads(runs[0].read_text())
    assert ddp["epochs"] == 4
    # same quality, both ways: each process saw half of every epoch, the gradients were averaged
    # (disjoint shards and identical weights: test_ddp_ranks_train_disjoint_shards_and_keep_identical_weights)
    assert ddp["metrics"]["val_acc"] == pytest.approx(single["metrics"]["val_acc"], abs=0.02)
    assert ddp["metrics"]["val_acc"] > 0.85

    client = project_client(tproject)
    exp = client.get_experiment_by_name("aiinfra-demo")
    all_runs = client.search_runs([exp.experiment_id])
    # the single-process run and exactly one DDP run: the second rank opened no run of its own
    assert len(all_runs) == 2
    ddp_run = client.get_run(ddp["run_id"])
    assert ddp_run.data.params["trainer.strategy"] == "ddp_spawn" and ddp_run.data.params["trainer.devices"] == "2"
    assert [m.step for m in client.get_metric_history(ddp["run_id"], "val_acc")] == [0, 1, 2, 3]


class RankRecorder(L.Callback):
    """Records, in each DDP process, the rows of every training batch it got (column 0 holds the
    row's index) and a digest of the weights after every optimizer step; writes them to
    ``<out>/rank<N>.json`` at the end (ddp_spawn pickles this callback into its workers)."""

    def __init__(self, out: str):
        self.out = out
        self.rows: dict[int, list[int]] = {}
        self.digests: list[str] = []

    @staticmethod
    def _digest(module) -> str:
        import torch

        flat = torch.cat([p.detach().flatten() for p in module.parameters()])
        return hashlib.sha256(flat.numpy().tobytes()).hexdigest()

    def on_train_start(self, trainer, pl_module):
        self.initial = self._digest(pl_module)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.rows.setdefault(trainer.current_epoch, []).extend(int(v) for v in batch[0][:, 0].tolist())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.digests.append(self._digest(pl_module))

    def on_train_end(self, trainer, pl_module):
        record = {"initial": self.initial, "rows": self.rows, "digests": self.digests}
        (Path(self.out) / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


def test_ddp_ranks_train_disjoint_shards_and_keep_identical_weights(tmp_path):
    """aiinfra's module, data path and trainer component under ddp_spawn (two CPU processes over
    gloo): every epoch the ranks' batches split the rows without overlap, and after every step
    both hold the same weights (the gradients were averaged), which moved from the start."""
    import torch

    from aiinfra.models.model_dir import InferenceModel, build_network
    from aiinfra.training.data import TensorBatches
    from aiinfra.training.module import ClassifierModule
    from aiinfra.training.schema import LightningTrainerConfig
    from aiinfra.training.trainer import build_trainer

    n = 256
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.arange(n, dtype=torch.float32)[:, None], torch.randn(n, 3, generator=g)], dim=1)
    y = (x[:, 1] > 0).long()
    net = build_network("mlp", {"hidden": 8, "layers": 1, "dropout": 0.0}, 4, 2)
    module = ClassifierModule(InferenceModel(net, 4), lr=0.05, max_epochs=2, threads=1, seed=3)
    tcfg = LightningTrainerConfig(
        accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=2, progress_bar=False, threads=1
    )
    tcfg.checkpoint.enabled = False
    tcfg.early_stopping.enabled = False
    trainer = build_trainer(tcfg, callbacks=[RankRecorder(str(tmp_path))], default_root_dir=str(tmp_path / "pl"))
    trainer.fit(
        module,
        train_dataloaders=TensorBatches(x, y, batch_size=32, shuffle=True, seed=3),
        val_dataloaders=TensorBatches(x, y, batch_size=64, shuffle=False),
    )
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for epoch in ("0", "1"):
        a, b = (set(r["rows"][epoch]) for r in ranks)
        assert len(a) == len(ranks[0]["rows"][epoch]) == n // 2 == len(b), epoch  # half each, no repeats
        assert not a & b and a | b == set(range(n)), epoch  # disjoint shards covering every row
    assert ranks[0]["rows"]["0"] != ranks[0]["rows"]["1"]  # reshuffled per epoch
    steps = ranks[0]["digests"]
    assert len(steps) == 2 * (n // 2 // 32) and ranks[1]["digests"] == steps  # same weights after every step
    assert ranks[0]["initial"] == ranks[1]["initial"] and len({ranks[0]["initial"], *steps}) == len(steps) + 1


@pytest.mark.slow
def test_plain_ddp_is_refused_inside_a_multirun(tproject):
    proc = train_multirun(tproject, *DDP_CPU, "trainer.strategy=ddp", "trainer.max_epochs=1", timeout=300)
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

    client = project_client(tproject)
    exp = client.get_experiment_by_name("aiinfra-demo")
    runs = client.search_runs([exp.experiment_id])
    assert [r.info.run_id for r in runs] == [summary["run_id"]]
    assert runs[0].data.params["trainer.strategy"] == "ddp"
