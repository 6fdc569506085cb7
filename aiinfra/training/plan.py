"""The training plan: what ``aiinfra train`` decides from the config and the prepared data.

Batch size, learning rate, loader, optimizer steps per Lightning step and the checkpoint to
resume from are decided here, once, in one frozen :class:`TrainingPlan`; the train stage builds
and fits from it, and records it (``train_run.json``, the MLflow params). Import-light: no torch.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiinfra.config.schema import Loader
from aiinfra.errors import AiinfraError

log = logging.getLogger(__name__)

#: the batch size that ``model.lr`` is meant for (see :func:`learning_rate`)
LR_REFERENCE_BATCH = 256

#: how much of the training features the in-memory loader may hold (float32)
MEMORY_BUDGET_BYTES = 2 << 30


@dataclass(frozen=True)
class TrainingPlan:
    batch_size: int  # rows per optimizer step (per process)
    lr: float  # the learning rate the optimizer gets
    loader: Loader  # memory or stream, never auto
    steps_per_call: int  # optimizer steps per Lightning training step (1: Lightning's own)
    resume_from: str | None  # the checkpoint file fit resumes from

    @property
    def micro_batch(self) -> int | None:
        """Rows per optimizer step inside one Lightning step, when the module steps itself."""
        return self.batch_size if self.steps_per_call > 1 else None

    @property
    def loader_batch(self) -> int:
        """Rows the training loader hands over at a time."""
        return self.batch_size * self.steps_per_call


def plan_training(cfg: Any, *, train_rows: int, n_features: int, raw_columns: int = 0) -> TrainingPlan:
    """The plan for this config and a prepared training split of ``train_rows`` x ``n_features``
    (encoded), read from ``raw_columns`` raw columns."""
    batch = batch_size(cfg, train_rows)
    loader = loader_kind(cfg, train_rows, n_features, raw_columns)
    return TrainingPlan(
        batch_size=batch,
        lr=learning_rate(cfg, batch),
        loader=loader,
        steps_per_call=steps_per_call(cfg, loader),
        resume_from=resume_checkpoint(cfg.trainer.checkpoint),
    )


def auto_batch_size(rows: int) -> int:
    """The batch size when ``data.batch_size`` is null: 512 rows (measured fastest per sample at equal
    accuracy, docs/training.md) unless that leaves fewer than ~32 steps per epoch."""
    return max(32, min(512, rows // 32))


def batch_size(cfg: Any, train_rows: int) -> int:
    """``data.batch_size``, or the automatic one for this many training rows when it is null."""
    return cfg.data.batch_size if cfg.data.batch_size is not None else auto_batch_size(train_rows)


def learning_rate(cfg: Any, batch: int) -> float:
    """``model.lr``, scaled by the square root of (batch / 256) when the automatic batch size goes
    above 256 and ``data.scale_lr`` is on: the square-root rule for Adam-type optimizers, so the
    faster large batches reach the accuracy of batch 256 in as many epochs (measured:
    docs/training.md). An explicit ``data.batch_size`` takes ``model.lr`` as it is."""
    lr = cfg.model.lr
    if cfg.data.batch_size is not None or not cfg.data.scale_lr:
        return lr
    return lr * math.sqrt(max(batch, LR_REFERENCE_BATCH) / LR_REFERENCE_BATCH)


#: bytes a raw value takes in the pandas frame the in-memory path reads before encoding (float64,
#: or an object pointer plus a short string): a rough figure, enough to keep a 20M-row table of
#: strings off the in-memory path
RAW_VALUE_BYTES = 16


def memory_fits(rows: int, features: int, budget_bytes: int = MEMORY_BUDGET_BYTES, raw_columns: int = 0) -> bool:
    """Whether the float32 features of this size, and the raw frame they are encoded from, fit the
    in-memory budget."""
    return rows * (features * 4 + raw_columns * RAW_VALUE_BYTES) <= budget_bytes


def loader_kind(cfg: Any, train_rows: int, n_features: int, raw_columns: int = 0) -> Loader:
    """``data.loader``; ``auto`` is ``memory`` when the training data fits, else ``stream``."""
    if cfg.data.loader != Loader.auto:
        return cfg.data.loader
    return Loader.memory if memory_fits(train_rows, n_features, raw_columns=raw_columns) else Loader.stream


def steps_per_call(cfg: Any, loader: Loader) -> int:
    """Batches per Lightning training step: ``trainer.steps_per_call`` where the module can step
    through them itself (in-memory loader, one process; no LR scheduler, gradient clipping,
    accumulation or mixed precision, which need Lightning's automatic optimization), else 1."""
    tcfg = cfg.trainer
    k = tcfg.steps_per_call
    if k <= 1 or loader != Loader.memory:
        return 1
    blockers = [
        name
        for name, on in (
            ("model.scheduler", cfg.model.scheduler is not None),
            ("trainer.gradient_clip_val", tcfg.gradient_clip_val not in (None, 0)),
            ("trainer.accumulate_grad_batches", tcfg.accumulate_grad_batches > 1),
            ("trainer.precision", tcfg.precision is not None and tcfg.precision not in ("32", "32-true")),
            (
                "several processes (trainer.devices/num_nodes/strategy)",
                str(tcfg.devices) != "1" or tcfg.num_nodes != 1 or tcfg.strategy not in ("auto", "single_device"),
            ),
        )
        if on
    ]
    if blockers:
        log.info("trainer.steps_per_call=%d off: %s need Lightning's automatic optimization", k, ", ".join(blockers))
        return 1
    return k


def resume_checkpoint(checkpoint_cfg: Any) -> str | None:
    """The checkpoint file of ``trainer.checkpoint.resume`` (``last``: ``<dir>/last.ckpt``), which
    must exist; None when not resuming. Checked here, not in validation: a sweep job's
    checkpoint directory is only known once the job runs."""
    resume = checkpoint_cfg.resume
    if resume is None:
        return None
    path = Path(checkpoint_cfg.dir) / "last.ckpt" if resume == "last" else Path(resume)
    if not path.is_file():
        raise AiinfraError(
            f"cannot resume: checkpoint {path} does not exist.",
            hint="train once with trainer.checkpoint.enabled=true, or drop trainer.checkpoint.resume",
        )
    return str(path)
