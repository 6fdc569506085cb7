"""Build a Lightning Trainer from ``conf/trainer/*.yaml`` (the ``lightning`` trainer component)."""

from __future__ import annotations

import logging
import os
from typing import Any

import lightning as L
import torch

from aiinfra.errors import ConfigError

log = logging.getLogger(__name__)


def set_threads(threads: int) -> None:
    """Pin torch's intra-op threads (0: leave torch's default). One thread per process is the
    measured default (docs/training.md): torch's one-per-core collapses when anything else
    competes for the cores."""
    if threads > 0:
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set once in this process
            pass


def global_rank() -> int:
    """This process's global rank before the Trainer exists: torchrun sets RANK, SLURM
    SLURM_PROCID; Lightning reads the same variables at import (``rank_zero_only.rank``)."""
    from lightning.pytorch.utilities import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0) or 0)


def resolve_precision(precision: Any, accelerator: str) -> str | None:
    """``auto-mixed``: bf16-mixed on GPUs that support bf16 (Ampere+), 16-mixed on older ones,
    full precision otherwise: the GPU configs stay usable with ``trainer.accelerator=cpu``
    (e.g. DDP over gloo on CPU processes)."""
    if not precision:
        return None
    if str(precision) != "auto-mixed":
        return str(precision)
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return None


def _in_multirun() -> bool:
    """Whether this run is a job of a Hydra sweep (``aiinfra train -m``)."""
    if os.environ.get("AIINFRA_MULTIRUN") == "1":
        return True
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
    except ImportError:  # pragma: no cover - hydra is a dependency
        return False
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _hydra_launcher() -> str | None:
    try:
        from hydra.core.hydra_config import HydraConfig

        return str(HydraConfig.get().launcher.get("_target_")) if HydraConfig.initialized() else None
    except Exception:  # no Hydra job config: the launcher is unknown
        return None


def _check_accelerator(tcfg: Any) -> None:
    if tcfg.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator={tcfg.accelerator} but this machine has no CUDA GPU.",
            hint="use trainer=cpu (or trainer=auto, which picks a GPU when there is one)",
        )
    if _in_multirun():
        from aiinfra.training.checks import check_sweep_trainer

        check_sweep_trainer(tcfg, launcher=_hydra_launcher())
    if os.environ.get("TORCHELASTIC_RUN_ID") and str(tcfg.devices) == "auto":
        raise ConfigError(
            "under torchrun, trainer.devices must be set explicitly (auto would start independent "
            "single-process trainings).",
            hint="trainer.devices=<processes per node> trainer.num_nodes=<nodes>",
        )


def build_trainer(tcfg: Any, *, callbacks: list[Any], default_root_dir: str) -> L.Trainer:
    from aiinfra.training.progress import use_bar

    _check_accelerator(tcfg)
    devices = tcfg.devices
    kwargs: dict[str, Any] = dict(
        accelerator=str(tcfg.accelerator),
        devices=devices if isinstance(devices, (int, str)) else list(devices),
        strategy=str(tcfg.strategy),
        num_nodes=int(tcfg.num_nodes),
        max_epochs=int(tcfg.max_epochs),
        min_epochs=int(tcfg.min_epochs),
        gradient_clip_val=tcfg.gradient_clip_val,
        deterministic=bool(tcfg.deterministic),
        gradient_clip_algorithm=str(tcfg.gradient_clip_algorithm),
        accumulate_grad_batches=int(tcfg.accumulate_grad_batches),
        check_val_every_n_epoch=int(tcfg.check_val_every_n_epoch),
        log_every_n_steps=int(tcfg.log_every_n_steps),
        enable_progress_bar=use_bar(tcfg.progress_bar),
        # Per-fit fixed costs that buy nothing here: the summary table, and sanity validation
        # batches (the first epoch validates anyway). Both overridable.
        enable_model_summary=bool(tcfg.model_summary),
        num_sanity_val_steps=int(tcfg.num_sanity_val_steps),
        enable_checkpointing=bool(tcfg.checkpoint.enabled),
        logger=False,  # tracking goes through aiinfra's MLflow callback (rank 0, epoch level)
        callbacks=callbacks,
        default_root_dir=default_root_dir,
    )
    precision = resolve_precision(tcfg.precision, str(tcfg.accelerator))
    if precision:
        kwargs["precision"] = precision
    if tcfg.limit_train_batches is not None:
        kwargs["limit_train_batches"] = tcfg.limit_train_batches
    if tcfg.limit_val_batches is not None:
        kwargs["limit_val_batches"] = tcfg.limit_val_batches
    try:
        return L.Trainer(**kwargs)
    except Exception as exc:  # Lightning's MisconfigurationException and ValueErrors are user errors here
        raise ConfigError(f"cannot build the Lightning Trainer: {exc}",
                          hint="check the trainer.* settings (`aiinfra config` shows them)") from None
