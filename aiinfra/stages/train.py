"""``aiinfra train``: fit the configured model with a Lightning Trainer and track it in MLflow.

Outputs: ``<paths.models>/model/`` (weights + model.json), ``<paths.models>/train_run.json``
(MLflow run id, model URI, lineage) and ``<paths.plots>/training_curve.csv``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _lineage(cfg: Any, data) -> dict[str, str]:
    from aiinfra.tracking.mlflow_setup import git_commit

    tags = {
        "aiinfra.dataset_hash": data.meta["dataset_hash"],
        "aiinfra.source": str(cfg.source.type),
        "aiinfra.model": str(cfg.model.type),
        "aiinfra.trainer": f"{cfg.trainer.type}/{cfg.trainer.accelerator}",
    }
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
        tags["aiinfra.git_commit"] = commit
    if Path("dvc.lock").is_file():
        import hashlib

        tags["aiinfra.dvc_lock_sha256"] = hashlib.sha256(Path("dvc.lock").read_bytes()).hexdigest()[:16]
    return tags


def _flat_params(cfg: Any) -> dict[str, str]:
    from omegaconf import OmegaConf

    out: dict[str, str] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            out[prefix] = str(node)[:500]

    container = OmegaConf.to_container(cfg, resolve=True)
    for section in ("seed", "source", "model", "trainer", "data", "split"):
        walk(section, container.get(section))
    return out


class _Phases:
    """Wall time of each phase of the stage (logged, and kept in train_run.json for the benchmark)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._t = time.perf_counter()

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._t, 3)
        self._t = now


def batch_size(cfg: Any, data) -> int:
    """``data.batch_size``, or the automatic one for this many training rows when it is null."""
    from aiinfra.training.data import auto_batch_size

    return int(cfg.data.batch_size) if cfg.data.batch_size else auto_batch_size(int(data.meta["rows"]["train"]))


#: the batch size that ``model.lr`` is meant for (see ``learning_rate``)
LR_REFERENCE_BATCH = 256


def learning_rate(cfg: Any, data) -> float:
    """``model.lr``, scaled by the square root of (batch / 256) when the automatic batch size goes
    above 256 and ``data.scale_lr`` is on: the square-root rule for Adam-type optimizers, so the
    faster large batches reach the accuracy of batch 256 in as many epochs (measured:
    docs/training.md). An explicit ``data.batch_size`` takes ``model.lr`` as it is."""
    import math

    lr = float(cfg.model.lr)
    if cfg.data.batch_size or not cfg.data.get("scale_lr", True):
        return lr
    return lr * math.sqrt(max(batch_size(cfg, data), LR_REFERENCE_BATCH) / LR_REFERENCE_BATCH)


def steps_per_call(cfg: Any, loader: str) -> int:
    """Batches per Lightning training step: ``trainer.steps_per_call`` where the module can step
    through them itself (in-memory loader, one process; no LR scheduler, gradient clipping,
    accumulation or mixed precision, which need Lightning's automatic optimization), else 1."""
    tcfg = cfg.trainer
    k = int(tcfg.get("steps_per_call", 1) or 1)
    if k <= 1 or loader != "memory":
        return 1
    blockers = [name for name, on in (
        ("model.scheduler", bool(cfg.model.get("scheduler"))),
        ("trainer.gradient_clip_val", bool(tcfg.gradient_clip_val)),
        ("trainer.accumulate_grad_batches", int(tcfg.accumulate_grad_batches) > 1),
        ("trainer.precision", bool(tcfg.precision) and str(tcfg.precision) not in ("32", "32-true")),
        ("several processes (trainer.devices/num_nodes/strategy)",
         str(tcfg.devices) != "1" or int(tcfg.num_nodes) != 1 or str(tcfg.strategy) not in ("auto", "single_device")),
    ) if on]
    if blockers:
        log.info("trainer.steps_per_call=%d off: %s need Lightning's automatic optimization", k, ", ".join(blockers))
        return 1
    return k


def _loader_kind(cfg: Any, data) -> str:
    from aiinfra.training.data import memory_fits

    loader = str(cfg.data.loader)
    if loader == "auto":
        loader = "memory" if memory_fits(int(data.meta["rows"]["train"]), len(data.features)) else "stream"
    return loader


def _loaders(cfg: Any, data, seed: int, k: int = 1):
    """(train loader, validation loader, training features for the standardiser). With
    ``steps_per_call`` k > 1 the training loader yields k batches at a time."""
    import torch

    from aiinfra.training.data import ParquetStream, TensorBatches

    bs = batch_size(cfg, data)
    loader = _loader_kind(cfg, data)
    if loader == "memory":
        x, y = data.arrays("train")  # read once: the same array feeds the loader and the scaler
        scale_x = x
        train = TensorBatches(torch.from_numpy(x), torch.from_numpy(y), bs * k, shuffle=True, seed=seed)
    elif loader == "stream":
        ds = ParquetStream(data.path("train"), data.features, data.target, data.classes, bs,
                           chunk_rows=int(cfg.data.stream_chunk_rows), seed=seed)
        workers = int(cfg.data.num_workers)
        train = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers,
                                            persistent_workers=workers > 0)
        scale_x, _ = data.arrays("reference")  # a sample of train: the scaler needs no full pass
    else:
        from aiinfra.errors import ConfigError

        raise ConfigError(f"unknown data.loader '{loader}'", hint="use auto, memory or stream")
    xv, yv = data.arrays("val")
    val = TensorBatches(torch.from_numpy(xv), torch.from_numpy(yv), max(bs, 4096), shuffle=False)
    return train, val, scale_x


def _callbacks(cfg: Any, ckpt_dir: Path, batches_per_step: int = 1) -> list[Any]:
    import lightning as L

    from aiinfra.training.progress import PlainProgress, bar_callback, use_bar

    tcfg = cfg.trainer
    callbacks: list[Any] = []
    if tcfg.early_stopping.enabled:
        callbacks.append(L.pytorch.callbacks.EarlyStopping(
            monitor=str(tcfg.early_stopping.monitor), mode=str(tcfg.early_stopping.mode),
            patience=int(tcfg.early_stopping.patience)))
    if tcfg.checkpoint.enabled:
        callbacks.append(L.pytorch.callbacks.ModelCheckpoint(
            dirpath=str(ckpt_dir), filename="epoch{epoch:03d}", auto_insert_metric_name=False,
            save_last=True, every_n_epochs=int(tcfg.checkpoint.every_n_epochs), save_top_k=1,
            monitor=str(tcfg.early_stopping.monitor), mode=str(tcfg.early_stopping.mode)))
    # redraw / check the clock every ~25 / ~64 batches, whatever a Lightning step holds
    k = max(1, batches_per_step)
    callbacks.append(bar_callback(max(1, 25 // k)) if use_bar(tcfg.progress_bar)
                     else PlainProgress(check_every=max(1, 64 // k)))
    return callbacks


def _resume_path(tcfg: Any, ckpt_dir: Path) -> str | None:
    resume = tcfg.checkpoint.resume
    if not resume:
        return None
    ckpt_path = str(ckpt_dir / "last.ckpt") if resume == "last" else str(resume)
    if not Path(ckpt_path).is_file():
        from aiinfra.errors import AiinfraError

        raise AiinfraError(f"cannot resume: checkpoint {ckpt_path} does not exist.",
                           hint="train once with trainer.checkpoint.enabled=true, or drop trainer.checkpoint.resume")
    return ckpt_path


def run(cfg: Any) -> dict[str, Any]:
    phases = _Phases()
    from aiinfra.data.prepared import PreparedData
    from aiinfra.training.trainer import global_rank, set_threads

    threads = int(cfg.trainer.threads)
    set_threads(threads)
    data = PreparedData.open(cfg.paths.prepared)

    import lightning as L
    import torch
    from omegaconf import OmegaConf

    from aiinfra.models.model_dir import InferenceModel, build_network
    from aiinfra.plugins.manager import get_plugins
    from aiinfra.tracking.lightning_callback import EpochMetrics
    from aiinfra.training.module import ClassifierModule

    phases.mark("import")
    tcfg = cfg.trainer
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    n_features, n_classes = len(data.features), len(data.classes)
    net = build_network(str(cfg.model.type), model_cfg, n_features, n_classes)
    model = InferenceModel(net, n_features)
    k = steps_per_call(cfg, _loader_kind(cfg, data))
    train_loader, val_loader, scale_x = _loaders(cfg, data, int(cfg.seed), k)
    model.scaler.fit(torch.from_numpy(scale_x))
    lr = learning_rate(cfg, data)
    module = ClassifierModule(model, lr=lr, weight_decay=float(cfg.model.weight_decay),
                              scheduler=cfg.model.get("scheduler"), max_epochs=int(tcfg.max_epochs),
                              threads=threads, seed=int(cfg.seed), micro_batch=batch_size(cfg, data) if k > 1 else None)
    ckpt_dir = Path(str(tcfg.checkpoint.dir))
    ckpt_path = _resume_path(tcfg, ckpt_dir)
    callbacks = _callbacks(cfg, ckpt_dir, k)
    phases.mark("data")

    # Under torchrun/SLURM every process runs this stage; only global rank 0 tracks and writes.
    # (ddp_spawn: this process is rank 0, the workers it spawns only train.)
    rank = global_rank()
    tracking = None
    if rank == 0:
        from aiinfra.tracking.run import TrainRun

        tracking = TrainRun(
            cfg, tags=lambda: _lineage(cfg, data),
            # the effective values, where the automatic batch size and its learning rate apply
            params=lambda: {**_flat_params(cfg), "train.batch_size": str(batch_size(cfg, data)), "train.lr": str(lr)},
            artifacts=lambda: {"config/resolved.yaml": OmegaConf.to_yaml(cfg, resolve=True),
                               "data/meta.json": data.meta})
        callbacks.append(EpochMetrics(tracking.run_id, tracking.uri, Path(cfg.paths.plots) / "training_curve.csv"))
    else:
        callbacks.append(EpochMetrics(None, None, Path(cfg.paths.plots) / "training_curve.csv"))
    phases.mark("mlflow_start")
    try:
        trainer = get_plugins().registry.get("trainer", str(tcfg.type)).load()(
            tcfg, callbacks=callbacks, default_root_dir=str(Path(".aiinfra") / "lightning"))
        t_fit = time.perf_counter()
        trainer.fit(module, train_dataloaders=train_loader, val_dataloaders=val_loader, ckpt_path=ckpt_path)
        fit_s = time.perf_counter() - t_fit
        if ckpt_path and "val_loss" not in trainer.callback_metrics:
            # the checkpoint had finished every epoch (killed while saving the model, say):
            # nothing was left to train, so validate it for the final metrics
            log.warning("checkpoint %s had finished all %d epochs: validating it for the final metrics",
                        ckpt_path, int(tcfg.max_epochs))
            trainer.validate(module, dataloaders=val_loader, verbose=False)
        phases.mark("fit")
        if tracking is None:
            return {"rank": rank}
        result = _finish(cfg, data, model, model_cfg, trainer, tracking, fit_s, phases, threads, k)
    except BaseException:
        if tracking is not None:
            tracking.close("FAILED")
        raise
    return result


def _finish(cfg: Any, data, model, model_cfg, trainer, tracking, fit_s: float, phases: _Phases,
            threads: int, steps: int = 1) -> dict[str, Any]:
    """Rank 0 after fit: final metrics, the model directory, the MLflow model, train_run.json."""
    import mlflow

    from aiinfra.models.model_dir import save_model
    from aiinfra.tracking.mlflow_setup import MODEL_ARTIFACT

    run = tracking.resume()
    phases.mark("mlflow_resume")
    epochs_done = int(trainer.current_epoch)
    if epochs_done == 0:
        # ddp_spawn: the epoch counter stayed in the workers; rank 0 wrote one curve row per epoch
        epochs_done = _curve_epochs(Path(cfg.paths.plots) / "training_curve.csv")
    rows = int(data.meta["rows"]["train"]) * max(1, epochs_done)
    final = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    mlflow.log_metrics({"fit_seconds": fit_s, "epochs": float(epochs_done),
                        "samples_per_second": rows / fit_s if fit_s else 0.0})
    model.eval()
    models_dir = Path(cfg.paths.models)
    model_dir = models_dir / "model"
    save_model(model, model_dir, component=str(cfg.model.type), model_cfg=model_cfg,
               features=data.features, classes=data.classes, target=data.target,
               extra={"dataset_hash": data.meta["dataset_hash"], "mlflow_run_id": run.info.run_id})
    info = _log_mlflow_model(model_dir, data, MODEL_ARTIFACT)
    phases.mark("log_model")
    tracking.close()
    phases.mark("end_run")
    summary = {
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "model_uri": info.model_uri,
        "model_id": getattr(info, "model_id", None),
        "dataset_hash": data.meta["dataset_hash"],
        "metrics": final,
        "fit_seconds": round(fit_s, 3),
        "epochs": epochs_done,
        "batch_size": batch_size(cfg, data),
        "lr": learning_rate(cfg, data),
        "steps_per_call": steps,
        "threads": threads,
        "timings": phases.seconds,
    }
    (models_dir / "train_run.json").write_text(json.dumps(summary, indent=2))
    log.info("trained %s: %s; fit %.1f s; MLflow run %s", cfg.model.type,
             " ".join(f"{k}={v:.4f}" for k, v in sorted(final.items())), fit_s, summary["run_id"])
    log.info("train stage phases (s): %s (pid %d)",
             ", ".join(f"{k} {v:.2f}" for k, v in phases.seconds.items()), os.getpid())
    return {"model_dir": str(model_dir), **{k: v for k, v in summary.items() if k not in ("metrics", "timings")},
            **final}


def _curve_epochs(curve: Path) -> int:
    if not curve.is_file():
        return 0
    lines = curve.read_text().splitlines()[1:]
    return int(float(lines[-1].split(",")[0])) + 1 if lines else 0


def _log_mlflow_model(model_dir: Path, data, artifact_name: str):
    """Log the model directory as an MLflow pyfunc (models-from-code) with a tensor signature."""
    import mlflow
    import numpy as np
    import torch
    from mlflow.models import infer_signature

    import aiinfra
    from aiinfra.models.model_dir import Predictor

    x, _ = data.arrays("val")
    example = x[:5]
    probs = Predictor.load(model_dir).predict_proba(example)
    signature = infer_signature(example.astype(np.float32), probs.astype(np.float32))
    code = Path(__file__).resolve().parent.parent / "tracking" / "pyfunc_model.py"
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=str(code),
        artifacts={artifact_name: str(model_dir)},
        signature=signature,
        input_example=example,
        # explicit requirements: inferring them would load the model in a subprocess (slow)
        pip_requirements=[f"aiinfra=={aiinfra.__version__}", f"torch=={torch.__version__.split('+')[0]}",
                          f"mlflow=={mlflow.__version__}", f"numpy=={np.__version__}"],
        metadata={"features": data.features, "classes": data.classes, "target": data.target},
    )
