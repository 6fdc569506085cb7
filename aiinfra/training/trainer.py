"""Build a Lightning Trainer from ``conf/trainer/*.yaml`` (the ``lightning`` trainer component).

The config arrives validated (:mod:`aiinfra.training.schema`); what is left to check here needs
this machine (a CUDA GPU) or this process (a Hydra sweep job).
"""

from __future__ import annotations

import os
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from aiinfra.errors import ConfigError
from aiinfra.training.checks import check_sweep_trainer
from aiinfra.training.progress import use_bar
from aiinfra.training.schema import Accelerator


def resolve_precision(precision: str | None, accelerator: Accelerator) -> str | None:
    """``auto-mixed``: bf16-mixed on GPUs that support bf16 (Ampere+), 16-mixed on older ones,
    full precision otherwise: the GPU configs stay usable with ``trainer.accelerator=cpu``
    (e.g. DDP over gloo on CPU processes)."""
    if precision is None:
        return None
    if precision != "auto-mixed":
        return precision
    if accelerator in (Accelerator.gpu, Accelerator.cuda, Accelerator.auto) and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return None


def _in_multirun() -> bool:
    """Whether this run is a job of a Hydra sweep (``aiinfra train -m``)."""
    if os.environ.get("AIINFRA_MULTIRUN") == "1":
        return True
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _hydra_launcher() -> str | None:
    try:
        return str(HydraConfig.get().launcher.get("_target_")) if HydraConfig.initialized() else None
    except Exception:  # no Hydra job config: the launcher is unknown
        return None


def _check_machine(tcfg: Any) -> None:
    if tcfg.accelerator in (Accelerator.gpu, Accelerator.cuda) and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator={tcfg.accelerator} but this machine has no CUDA GPU.",
            hint="use trainer=cpu (or trainer=auto, which picks a GPU when there is one)",
        )
    if _in_multirun():
        # the sweep was checked before it started, but with the launcher named on the command
        # line only; the job knows the launcher Hydra actually runs it with
        check_sweep_trainer(tcfg, launcher=_hydra_launcher())


def build_trainer(tcfg: Any, *, callbacks: list[Any], default_root_dir: str) -> L.Trainer:
    _check_machine(tcfg)
    kwargs: dict[str, Any] = dict(
        accelerator=tcfg.accelerator,
        devices=tcfg.devices,
        strategy=tcfg.strategy,
        num_nodes=tcfg.num_nodes,
        max_epochs=tcfg.max_epochs,
        min_epochs=tcfg.min_epochs,
        gradient_clip_val=tcfg.gradient_clip_val,
        deterministic=tcfg.deterministic,
        gradient_clip_algorithm=tcfg.gradient_clip_algorithm,
        accumulate_grad_batches=tcfg.accumulate_grad_batches,
        check_val_every_n_epoch=tcfg.check_val_every_n_epoch,
        log_every_n_steps=tcfg.log_every_n_steps,
        enable_progress_bar=use_bar(tcfg.progress_bar),
        # Per-fit fixed costs that buy nothing here: the summary table, and sanity validation
        # batches (the first epoch validates anyway). Both overridable.
        enable_model_summary=tcfg.model_summary,
        num_sanity_val_steps=tcfg.num_sanity_val_steps,
        enable_checkpointing=tcfg.checkpoint.enabled,
        logger=False,  # tracking goes through aiinfra's MLflow callback (rank 0, epoch level)
        callbacks=callbacks,
        default_root_dir=default_root_dir,
    )
    precision = resolve_precision(tcfg.precision, tcfg.accelerator)
    if precision:
        kwargs["precision"] = precision
    for key in ("limit_train_batches", "limit_val_batches"):
        limit = getattr(tcfg, key)
        if limit is not None:  # above 1: a number of batches (validation checked it is whole)
            kwargs[key] = limit if limit <= 1 else int(limit)
    try:
        return L.Trainer(**kwargs)
    except Exception as exc:  # Lightning's MisconfigurationException and ValueErrors are user errors here
        raise ConfigError(
            f"cannot build the Lightning Trainer: {exc}",
            hint="check the trainer.* settings (`aiinfra config` shows them)",
        ) from None
