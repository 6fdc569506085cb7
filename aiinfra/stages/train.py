"""``aiinfra train``: fit the configured model with a Lightning Trainer and track it in MLflow.

Orchestration only: read the prepared data, plan the training (:mod:`aiinfra.training.plan`),
build the network, loaders and callbacks, fit with the configured trainer component, save the
model directory, track it (:mod:`aiinfra.tracking.run`).

The task (classification or regression) and the encoded input columns come from the prepared
data; ``trainer.loss`` is checked against the task before torch is imported.

Outputs: ``<paths.models>/model/`` (weights, model.json, contract.json, preprocess.json),
``<paths.models>/train_run.json`` (MLflow run id, model URI, lineage, the plan, task, loss, class
weights) and ``<paths.plots>/training_curve.csv``.

torch, Lightning and MLflow are imported inside :func:`run`: the runner imports this module
before it validates the config, and a typo must not wait for them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from aiinfra.config.schema import Loader
from aiinfra.config.typed import to_dict, to_yaml
from aiinfra.data.prepared import PreparedData
from aiinfra.training.plan import TrainingPlan, plan_training
from aiinfra.training.schema import Loss, resolve_loss

#: the task name of a regression (aiinfra.data.schema.Task.regression; a StrEnum equals it)
REGRESSION = "regression"

log = logging.getLogger(__name__)


class _Phases:
    """Wall time of each phase of the stage (logged, and kept in train_run.json for the benchmark)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._t = time.perf_counter()

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._t, 3)
        self._t = now


def _task(data: PreparedData) -> str:
    """The prepared data's task as a plain string (data prepared before tasks: a classification)."""
    return str(data.task)


def _train_target(data: PreparedData) -> Any:
    """The TRAIN split's encoded target, reading only its column (the streaming loader's path)."""
    y = data.read("train", columns=[data.target])[data.target]  # local or a URL, one file or parts
    return data.transform.encode_target(y)


def _target_scale(data: PreparedData, y_train: Any | None) -> tuple[float, float] | None:
    """Regression: (mean, std) of the TRAIN split's target, which the network learns standardized
    (so the default learning rate suits any target's units); None for classification."""
    import numpy as np

    if _task(data) != REGRESSION:
        return None
    if y_train is None:  # streaming: only the target column is read
        y_train = _train_target(data)
    y = np.asarray(y_train, dtype=np.float64)
    std = float(y.std())
    return float(y.mean()), std if std > 0 else 1.0


def _loaders(cfg: Any, data: PreparedData, plan: TrainingPlan):
    """(train loader, validation loader, training features for the standardiser, the regression
    target's (mean, std) or None, the train split's labels or None). With ``plan.steps_per_call``
    k > 1 the training loader yields k batches at a time."""
    import numpy as np
    import torch

    from aiinfra.training.data import ParquetStream, TensorBatches

    def scaled(y: Any) -> Any:
        return y if scale is None else ((y - scale[0]) / scale[1]).astype(np.float32)

    if plan.loader == Loader.memory:
        x, y = data.arrays("train")  # read once: the same array feeds the loader and the scaler
        scale_x, y_train = x, y
        scale = _target_scale(data, y)
        train = TensorBatches(
            torch.from_numpy(x), torch.from_numpy(scaled(y)), plan.loader_batch, shuffle=True, seed=cfg.seed
        )
    else:
        y_train = None
        scale = _target_scale(data, None)
        ds = ParquetStream(
            data.path("train"),
            data.features,
            data.target,
            data.classes,
            plan.batch_size,
            chunk_rows=cfg.data.stream_chunk_rows,
            seed=cfg.seed,
            transform=data.transform,
            target_scale=scale,
        )
        workers = cfg.data.num_workers
        train = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers, persistent_workers=workers > 0)
        scale_x, _ = data.arrays("reference")  # a sample of train: the scaler needs no full pass
    if plan.loader == Loader.memory:
        xv, yv = data.arrays("val")
        val = TensorBatches(
            torch.from_numpy(xv), torch.from_numpy(scaled(yv)), max(plan.batch_size, 4096), shuffle=False
        )
    else:  # the validation split streams too: it grows with the data like the train split
        val_ds = ParquetStream(
            data.path("val"),
            data.features,
            data.target,
            data.classes,
            max(plan.batch_size, 4096),
            chunk_rows=cfg.data.stream_chunk_rows,
            shuffle=False,
            transform=data.transform,
            target_scale=scale,
        )
        val = torch.utils.data.DataLoader(val_ds, batch_size=None)
    return train, val, scale_x, scale, y_train


def _class_weights(tcfg: Any, data: PreparedData, y_train: Any | None):
    """``trainer.class_weights=balanced``: weights from the TRAIN split's class counts (the
    streaming loader reads only the target column for them); None otherwise."""
    import torch

    from aiinfra.training.module import balanced_class_weights

    if getattr(tcfg, "class_weights", None) is None:
        return None
    if y_train is None:
        y_train = _train_target(data)
    weights = balanced_class_weights(torch.as_tensor(y_train), len(data.classes))
    log.info(
        "class weights (balanced, train split): %s",
        ", ".join(f"{c}={w:.3f}" for c, w in zip(data.classes, weights.tolist(), strict=True)),
    )
    return weights


def _callbacks(tcfg: Any, plan: TrainingPlan) -> list[Any]:
    import lightning as L

    from aiinfra.training.progress import PlainProgress, bar_callback, use_bar

    callbacks: list[Any] = []
    stopping = tcfg.early_stopping
    if stopping.enabled:
        callbacks.append(
            L.pytorch.callbacks.EarlyStopping(monitor=stopping.monitor, mode=stopping.mode, patience=stopping.patience)
        )
    if tcfg.checkpoint.enabled:
        callbacks.append(
            L.pytorch.callbacks.ModelCheckpoint(
                dirpath=tcfg.checkpoint.dir,
                filename="epoch{epoch:03d}",
                auto_insert_metric_name=False,
                save_last=True,
                every_n_epochs=tcfg.checkpoint.every_n_epochs,
                save_top_k=1,
                monitor=stopping.monitor,
                mode=stopping.mode,
                # last.ckpt is always this training's (a later run otherwise writes last-v1.ckpt,
                # and trainer.checkpoint.resume=last would resume the earlier run's)
                enable_version_counter=False,
            )
        )
    # redraw / check the clock every ~25 / ~64 batches, whatever a Lightning step holds
    k = plan.steps_per_call
    callbacks.append(
        bar_callback(max(1, 25 // k)) if use_bar(tcfg.progress_bar) else PlainProgress(check_every=max(1, 64 // k))
    )
    return callbacks


class Terminated(SystemExit):
    """SIGTERM arrived: unwinds the stage (so the MLflow run is ended as KILLED), exit status 143."""


@contextlib.contextmanager
def _sigterm_unwinds():
    """While the stage runs, SIGTERM raises :class:`Terminated` in the main thread instead of
    killing the process on the spot, so the ``finally`` paths end the MLflow run. Lightning's own
    SIGTERM handler (installed during fit) calls this one after its own. A second SIGTERM during
    the clean-up is ignored; the previous handler is restored on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log.warning("SIGTERM: stopping the training; its MLflow run is ended as KILLED")
        raise Terminated(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(cfg: Any) -> dict[str, Any]:
    with _sigterm_unwinds():
        return _run(cfg)


def _run(cfg: Any) -> dict[str, Any]:
    from aiinfra.governance.resources import ResourceMeter
    from aiinfra.governance.signing import require_signing_key

    # signing.mode=require without a key: fail now, not after the whole fit
    require_signing_key(cfg.signing)

    # what this stage uses from here on (getrusage self + children, /proc/self/io, GPU held):
    # recorded at the end, and the budget's figure while it trains (docs/costs.md)
    meter = ResourceMeter()
    phases = _Phases()
    from aiinfra.training.process import global_rank, set_threads

    tcfg = cfg.trainer
    set_threads(tcfg.threads)
    data = PreparedData.open(cfg.paths.prepared)
    source = data.source(cfg.source)  # lineage from what prepare read (warns or fails on a mismatch)
    # the one trainer rule that needs the data's task: before torch is imported
    loss = resolve_loss(getattr(tcfg, "loss", Loss.auto), getattr(tcfg, "class_weights", None), _task(data))
    encoded = list(data.encoded_features)
    raw_columns = len(data.features) + 1  # the in-memory path reads the raw features and the target first
    plan = plan_training(cfg, train_rows=data.meta["rows"]["train"], n_features=len(encoded), raw_columns=raw_columns)

    import lightning as L
    import torch

    from aiinfra.models.model_dir import InferenceModel, build_network, n_outputs
    from aiinfra.plugins.manager import get_plugins
    from aiinfra.training.epoch_metrics import EpochMetrics
    from aiinfra.training.module import ClassifierModule

    phases.mark("import")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    model_cfg = to_dict(cfg.model)
    n_features = len(encoded)  # the encoded columns: one-hot, indicators, date parts...
    outputs = n_outputs(_task(data), len(data.classes))
    model = InferenceModel(build_network(cfg.model.type, model_cfg, n_features, outputs), n_features)
    train_loader, val_loader, scale_x, target_scale, y_train = _loaders(cfg, data, plan)
    model.scaler.fit(torch.from_numpy(scale_x))
    class_weights = _class_weights(tcfg, data, y_train)
    del y_train
    # what train_run.json records about the task (the plan's fields are recorded beside them)
    task_info = {
        "task": _task(data),
        "loss": str(loss),
        "class_weights": None
        if class_weights is None
        else {str(c): round(w, 6) for c, w in zip(data.classes, class_weights.tolist(), strict=True)},
        "target_mean": target_scale[0] if target_scale else None,
        "target_std": target_scale[1] if target_scale else None,
    }
    module = ClassifierModule(
        model,
        lr=plan.lr,
        weight_decay=cfg.model.weight_decay,
        scheduler=cfg.model.scheduler,
        max_epochs=tcfg.max_epochs,
        threads=tcfg.threads,
        seed=cfg.seed,
        micro_batch=plan.micro_batch,
        loss=loss,
        class_weights=class_weights,
        target_scale=target_scale,
        input_names=encoded,
    )
    callbacks = _callbacks(tcfg, plan)
    budget = _budget_callback(cfg, plan, meter)
    phases.mark("data")

    # Under torchrun/SLURM every process runs this stage; only global rank 0 tracks and writes.
    # (ddp_spawn: this process is rank 0, the workers it spawns only train.)
    rank = global_rank()
    curve = Path(cfg.paths.plots) / "training_curve.csv"
    tracking = None
    if rank == 0:
        from aiinfra.tracking.run import TrainRun, config_params, lineage_tags  # rank 0 alone imports MLflow

        # the params hold the effective values, where the automatic batch size and its learning rate apply
        tracking = TrainRun(
            cfg,
            tags=lineage_tags(cfg, data.meta["dataset_hash"], source),
            params={**config_params(cfg, source), "train.batch_size": str(plan.batch_size), "train.lr": str(plan.lr)},
            artifacts={"config/resolved.yaml": to_yaml(cfg), "data/meta.json": data.meta},
        )
        callbacks.append(EpochMetrics(tracking.run_id, tracking.uri, curve, retry_s=tracking.retry_s))
    else:
        callbacks.append(EpochMetrics(None, None, curve))
    if budget is not None:
        callbacks.append(budget)
    phases.mark("mlflow_start")
    try:
        trainer = (
            get_plugins()
            .registry.get("trainer", tcfg.type)
            .load()(tcfg, callbacks=callbacks, default_root_dir=str(Path(".aiinfra") / "lightning"))
        )
        t_fit = time.perf_counter()
        trainer.fit(module, train_dataloaders=train_loader, val_dataloaders=val_loader, ckpt_path=plan.resume_from)
        fit_s = time.perf_counter() - t_fit
        if plan.resume_from and "val_loss" not in trainer.callback_metrics:
            # the checkpoint had finished every epoch (killed while saving the model, say):
            # nothing was left to train, so validate it for the final metrics
            log.warning(
                "checkpoint %s had finished all %d epochs: validating it for the final metrics",
                plan.resume_from,
                tcfg.max_epochs,
            )
            trainer.validate(module, dataloaders=val_loader, verbose=False)
        phases.mark("fit")
        if budget is not None:
            _raise_if_budget_stopped(cfg, trainer, tracking, meter)
        if tracking is None:
            return {"rank": rank}
        result = _finish(
            cfg, data, plan, model, model_cfg, trainer, tracking, fit_s, phases, target_scale, task_info, meter
        )
    except BaseException as exc:
        if tracking is not None:
            from aiinfra.tracking.run import status_for

            tracking.close(status_for(exc), quiet=True)
        raise
    return result


def _finish(
    cfg: Any,
    data: PreparedData,
    plan: TrainingPlan,
    model,
    model_cfg: dict[str, Any],
    trainer,
    tracking,
    fit_s: float,
    phases: _Phases,
    target_scale: tuple[float, float] | None = None,
    task_info: dict[str, Any] | None = None,
    meter: Any = None,
) -> dict[str, Any]:
    """Rank 0 after fit: final metrics, the model directory, the MLflow model, train_run.json."""
    from aiinfra.governance.signing import sign_model_dir
    from aiinfra.models.model_dir import save_model
    from aiinfra.tracking.mlflow_setup import MODEL_ARTIFACT
    from aiinfra.tracking.run import log_model_dir

    run = tracking.resume()
    phases.mark("mlflow_resume")
    epochs_done = trainer.current_epoch
    if epochs_done == 0:
        # ddp_spawn: the epoch counter stayed in the workers; rank 0 wrote one curve row per epoch
        epochs_done = _curve_epochs(Path(cfg.paths.plots) / "training_curve.csv")
    rows = data.meta["rows"]["train"] * max(1, epochs_done)
    final = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    # logged with the stage's resources at the end, in one store call
    fit_metrics = {
        "fit_seconds": fit_s,
        "epochs": float(epochs_done),
        "samples_per_second": rows / fit_s if fit_s else 0.0,
    }
    model.eval()
    models_dir = Path(cfg.paths.models)
    model_dir = models_dir / "model"
    save_model(
        model,
        model_dir,
        component=cfg.model.type,
        model_cfg=model_cfg,
        features=data.features,
        classes=data.classes,
        target=data.target,
        extra={"dataset_hash": data.meta["dataset_hash"], "mlflow_run_id": run.info.run_id},
        task=_task(data),
        encoded_features=list(data.encoded_features),
        target_mean=target_scale[0] if target_scale else None,
        target_std=target_scale[1] if target_scale else None,
        contract=data.contract,
        transform=data.transform,
    )
    # signed before MLflow copies it: the registered artifact carries the manifest and signature
    sign_model_dir(model_dir, cfg.signing)
    phases.mark("sign")
    info = tracking.call(
        "logging the model",
        log_model_dir,
        model_dir,
        data.read("val").head(5),
        artifact_name=MODEL_ARTIFACT,
        features=data.features,
        classes=data.classes,
        target=data.target,
    )
    phases.mark("log_model")
    resources, cost = _record_usage(cfg, tracking, meter, fit_metrics)
    phases.mark("record_usage")
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
        "batch_size": plan.batch_size,
        "lr": plan.lr,
        **(task_info or {}),
        "loader": plan.loader.value,
        "steps_per_call": plan.steps_per_call,
        "threads": cfg.trainer.threads,
        "timings": phases.seconds,
        "resources": resources,
        "cost": cost,
    }
    (models_dir / "train_run.json").write_text(json.dumps(summary, indent=2))
    log.info(
        "trained %s: %s; fit %.1f s; MLflow run %s",
        cfg.model.type,
        " ".join(f"{k}={v:.4f}" for k, v in sorted(final.items())),
        fit_s,
        summary["run_id"],
    )
    log.info(
        "train stage phases (s): %s (pid %d)", ", ".join(f"{k} {v:.2f}" for k, v in phases.seconds.items()), os.getpid()
    )
    return {
        "model_dir": str(model_dir),
        **{k: v for k, v in summary.items() if k not in ("metrics", "timings", "resources", "cost")},
        **final,
    }


def _record_usage(
    cfg: Any, tracking, meter: Any, extra: dict[str, float], tags: dict[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stage's usage so far and its price: to the MLflow run (metrics ``resources.*``,
    ``cost.*``; tags ``cost.currency``, ``cost.label.<k>``) with ``extra``, in one store call.
    Returns (usage, cost) for train_run.json."""
    from aiinfra.governance.costs import cost_tags, resource_metrics
    from aiinfra.governance.resources import ResourceMeter, price

    usage = (meter or ResourceMeter()).usage()
    cost = price(usage, cfg.costs.rates)
    tracking.log_metrics(
        {**extra, **resource_metrics(usage, cost)},
        tags={**cost_tags(cfg.costs.rates.currency, cfg.costs.labels), **(tags or {})},
    )
    log.info(
        "train used %.1f CPU-s in %.1f s wall, peak %.0f MB: %.6f %s",
        usage.cpu_s,
        usage.wall_s,
        usage.peak_rss_bytes / 2**20,
        cost["total"],
        cost["currency"],
    )
    return usage.to_dict(), cost


def _budget_callback(cfg: Any, plan: TrainingPlan, meter: Any):
    """The in-loop budget check (:mod:`aiinfra.training.budget`), or None without a limit."""
    stage_budget = cfg.budget.for_stage("train")
    if stage_budget.max_cost is None and stage_budget.max_cpu_hours is None:
        return None
    from aiinfra.training.budget import BudgetStop

    # one Lightning step holds plan.steps_per_call batches: check about every 16 batches' worth
    return BudgetStop(stage_budget, cfg.costs.rates, meter, check_every=max(1, 16 // plan.steps_per_call))


def _raise_if_budget_stopped(cfg: Any, trainer, tracking, meter: Any) -> None:
    """After fit: when the budget stopped it, keep ``last.ckpt``, record the usage and the reason
    on the MLflow run, and raise one error naming the figure (the model directory is not written:
    a model cut short by its budget is not one to evaluate or register)."""
    from aiinfra.errors import BudgetExceeded
    from aiinfra.training.budget import limit_key, outcome, stop_message

    stop = outcome(trainer)
    if stop is None:
        return
    tcfg = cfg.trainer
    ckpt = Path(tcfg.checkpoint.dir) / "last.ckpt"
    saved = getattr(trainer.checkpoint_callback, "last_model_path", "") or ""
    if (not saved or Path(saved).resolve() != ckpt.resolve()) and trainer.world_size == 1:
        # checkpointing off (or its last one is not this run's): the budget stop still keeps one
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(str(ckpt))
    key = limit_key(cfg.budget, "train", stop["which"])
    limit = getattr(cfg.budget.for_stage("train"), stop["which"])
    message = stop_message(stop, key=key, limit=limit, currency=cfg.costs.rates.currency)
    if tracking is not None:
        try:
            _record_usage(cfg, tracking, meter, {"budget_stopped": 1.0}, {"aiinfra.budget.stopped": message})
        except Exception as exc:  # noqa: BLE001 - the budget error is the one to report
            log.warning("could not record the budget stop on MLflow run %s: %s", tracking.run_id, exc)
    kept = f"checkpoint kept: {ckpt}" if ckpt.is_file() else "no checkpoint was written"
    raise BudgetExceeded(
        f"{message}; {kept}",
        hint=f"raise the limit ({key}=...) or continue from the checkpoint: "
        f"aiinfra train trainer.checkpoint.resume=last {key}=<higher>",
    )


def _curve_epochs(curve: Path) -> int:
    if not curve.is_file():
        return 0
    lines = curve.read_text().splitlines()[1:]
    return int(float(lines[-1].split(",")[0])) + 1 if lines else 0
