"""`aiinfra train` on the in-memory fast path: tracking, lineage, config-driven training options,
trainer configs, and clear errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from project_helpers import cli_env, project_client


def _client(project):

    return project_client(project)


def test_train_logs_epochs_system_metrics_model_and_lineage(tproject, aiinfra_main, monkeypatch, caplog):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    caplog.set_level("INFO", logger="aiinfra.train")
    code, _, err = aiinfra_main(
        "train",
        "trainer.max_epochs=4",
        "trainer.early_stopping.enabled=false",
        "model.scheduler=cosine",
        "trainer.gradient_clip_val=0.5",
        "tracking.system_metrics=true",
    )
    assert code == 0, err
    # not a terminal: plain progress lines (one per epoch), no bar
    lines = [r.getMessage() for r in caplog.records if r.name == "aiinfra.train"]
    assert [ln.split()[1] for ln in lines if ln.startswith("epoch ")] == ["1/4", "2/4", "3/4", "4/4"]
    summary = json.loads((tproject / "models" / "train_run.json").read_text())
    assert summary["epochs"] == 4 and summary["batch_size"] > 0 and summary["threads"] == 1
    assert summary["metrics"]["val_acc"] > 0.85

    client = _client(tproject)
    run = client.get_run(summary["run_id"])
    assert run.info.status == "FINISHED"
    # one value per epoch, at steps 0..3, for every epoch metric
    for key in ("val_acc", "val_loss", "train_loss"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [0, 1, 2, 3]
    assert any(k.startswith("system/cpu") for k in run.data.metrics), sorted(run.data.metrics)
    assert run.data.params["model.scheduler"] == "cosine"
    assert run.data.params["trainer.gradient_clip_val"] == "0.5"
    assert run.data.tags["aiinfra.dataset_hash"] == summary["dataset_hash"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "config")}
    assert "config/resolved.yaml" in artifacts

    import mlflow

    info = mlflow.models.get_model_info(summary["model_uri"])
    # column-based: the raw input columns with their types (synthetic: all float)
    inputs = info.signature.inputs.to_dict()
    assert [c["type"] for c in inputs] == ["double"] * 16 and inputs[0]["name"] == "f0", inputs
    assert info.saved_input_example_info is not None
    with (tproject / "plots" / "training_curve.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    # the curve's train_loss is that epoch's own mean, the same value MLflow got
    hist = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "train_loss")}
    assert float(rows[-1]["train_loss"]) == pytest.approx(hist[3])


def test_early_stopping_from_config_stops_before_max_epochs(tproject, aiinfra_main):
    code, _, err = aiinfra_main(
        "train",
        "trainer.max_epochs=60",
        "trainer.early_stopping.monitor=val_acc",
        "trainer.early_stopping.mode=max",
        "trainer.early_stopping.patience=1",
        "trainer.checkpoint.enabled=false",
    )
    assert code == 0, err
    summary = json.loads((tproject / "models" / "train_run.json").read_text())
    assert 2 <= summary["epochs"] < 60


def test_progress_bar_when_asked_for(tproject, aiinfra_main):
    code, out, err = aiinfra_main(
        "train", "trainer.max_epochs=1", "trainer.progress_bar=true", "trainer.checkpoint.enabled=false"
    )
    assert code == 0, err
    assert "Epoch 0: 100%" in out + err and "it/s" in out + err  # Lightning's tqdm bar


def test_stream_loader_trains_from_parquet_chunks(tproject, aiinfra_main):
    code, _, err = aiinfra_main(
        "train",
        "data.loader=stream",
        "data.stream_chunk_rows=512",
        "trainer.max_epochs=3",
        "trainer.checkpoint.enabled=false",
    )
    assert code == 0, err
    summary = json.loads((tproject / "models" / "train_run.json").read_text())
    assert summary["epochs"] == 3 and summary["metrics"]["val_acc"] > 0.8


def test_gpu_trainer_on_a_cpu_machine_is_one_clear_error(tproject, aiinfra_main):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, _, err = aiinfra_main("train", "trainer=gpu")
    assert code == 2
    assert "no CUDA GPU" in err and "trainer=cpu" in err and "Traceback" not in err


def test_precision_auto_mixed_is_full_precision_on_cpu():
    from aiinfra.training.trainer import resolve_precision

    assert resolve_precision("auto-mixed", "cpu") is None
    assert resolve_precision("bf16-mixed", "gpu") == "bf16-mixed"
    assert resolve_precision(None, "gpu") is None


def test_every_trainer_config_validates_without_importing_torch(tproject):
    code = (
        "import sys; from aiinfra.cli import main\n"
        "for t in ('cpu', 'gpu', 'ddp', 'multinode', 'auto'):\n"
        "    assert main(['config', 'trainer=' + t]) == 0, t\n"
        "heavy = [m for m in ('torch', 'lightning', 'mlflow', 'optuna') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tproject, env=cli_env(), capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "HEAVY []" in out.stdout
    assert "num_nodes: 2" in out.stdout and "strategy: ddp_spawn" in out.stdout


def test_tensor_batches_reshuffle_per_epoch_by_seed_and_cover_every_row():
    import torch

    from aiinfra.training.data import TensorBatches

    x = torch.arange(10, dtype=torch.float32).unsqueeze(1)
    y = torch.arange(10)
    tb = TensorBatches(x, y, batch_size=4, shuffle=True, seed=3)
    first = torch.cat([b[1] for b in tb])
    tb.set_epoch(1)
    second = torch.cat([b[1] for b in tb])
    assert sorted(first.tolist()) == sorted(second.tolist()) == list(range(10))
    assert first.tolist() != second.tolist()
    again = TensorBatches(x, y, batch_size=4, shuffle=True, seed=3)
    assert torch.cat([b[1] for b in again]).tolist() == first.tolist()
    assert len(tb) == 3 and [len(b[1]) for b in tb] == [4, 4, 2]


def test_parquet_stream_reshuffles_each_pass_and_splits_rows_evenly_between_ranks(tmp_path, monkeypatch):
    import numpy as np
    import pandas as pd
    import torch

    from aiinfra.training.data import ParquetStream

    path = tmp_path / "t.parquet"
    frame = pd.DataFrame({"a": np.arange(1000, dtype=float), "target": np.arange(1000) % 2})
    frame.to_parquet(path, row_group_size=300)

    def rows(ds):
        return torch.cat([x for x, _ in ds]).flatten().tolist()

    ds = ParquetStream(path, ["a"], "target", [0, 1], 64, chunk_rows=200)
    first, second = rows(ds), rows(ds)
    assert sorted(first) == sorted(second) == list(range(1000)) and first != second
    shares = []
    for rank in (0, 1):  # what torchrun / Lightning put in each process's environment
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        shares.append(rows(ParquetStream(path, ["a"], "target", [0, 1], 64, chunk_rows=200)))
    assert len(shares[0]) == len(shares[1]) == 500 and not set(shares[0]) & set(shares[1])


def test_register_rescores_the_champion_on_the_current_split(tproject, aiinfra_main, caplog):
    """The gate compares challenger and champion on the same data: the champion's model is loaded
    from the registry and scored on the evaluation split, exactly as `evaluate` scored it."""
    import logging

    import mlflow

    from aiinfra.runner import load_config
    from aiinfra.stages.register import _evaluate_version
    from aiinfra.tracking.mlflow_setup import setup_mlflow

    for stage in (["train", "trainer.max_epochs=2"], ["evaluate"], ["register"]):
        code, _, err = aiinfra_main(*stage)
        assert code == 0, err
    cfg = load_config([])
    setup_mlflow(cfg)
    mv = mlflow.MlflowClient().get_model_version_by_alias(cfg.register.model_name, cfg.register.alias)
    rescored = _evaluate_version(cfg, cfg.register.model_name, str(mv.version))
    evaluated = json.loads((tproject / "metrics.json").read_text())
    evaluated.pop("resources")  # what the stages cost (docs/costs.md), not a metric of the model
    assert rescored.keys() == evaluated.keys()
    for key, value in evaluated.items():
        assert rescored[key] == pytest.approx(value, rel=1e-6), key
    # a second register re-scores the champion instead of falling back to its recorded metric
    caplog.set_level(logging.WARNING)
    code, _, err = aiinfra_main("register")
    assert code == 0, err
    assert "could not re-evaluate" not in caplog.text + err


def test_training_and_loading_the_mlflow_model_print_no_type_hint_warning(tproject):
    """The pyfunc model's predict is type-hinted (np.ndarray): MLflow's "Add type hints" nudge is
    gone at its cause, at logging (train) and at loading, and a DataFrame of raw rows predicts."""
    from project_helpers import run_cli

    proc = run_cli(tproject, "train", "trainer.max_epochs=1", "trainer.checkpoint.enabled=false", check=True)
    assert "type hint" not in (proc.stdout + proc.stderr).lower()
    uri = json.loads((tproject / "models" / "train_run.json").read_text())["model_uri"]
    load = (
        "import sys, warnings, numpy as np, pandas as pd, mlflow\n"
        "warnings.simplefilter('always')\n"
        "mlflow.set_tracking_uri(sys.argv[2])\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    m = mlflow.pyfunc.load_model(sys.argv[1])\n"
        "features = m.metadata.metadata['features']\n"
        "x = np.zeros((3, len(features)))\n"
        "a = m.predict(pd.DataFrame(x, columns=features))\n"
        "assert a.shape == (3, len(m.metadata.metadata['classes'])), a.shape\n"
        "print('\\n'.join(str(w.message) for w in caught))\n"
        "print('rows', len(a))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", load, uri, f"sqlite:///{tproject / 'mlflow.db'}"],
        cwd=tproject,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert "rows 3" in loaded.stdout
    assert "type hint" not in (loaded.stdout + loaded.stderr).lower(), loaded.stdout + loaded.stderr
