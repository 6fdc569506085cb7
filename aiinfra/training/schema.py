"""Config schema of the built-in Lightning trainer (``conf/trainer/*.yaml``). Import-light."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING


@dataclass
class EarlyStoppingConfig:
    enabled: bool = True
    monitor: str = "val_loss"
    mode: str = "min"
    patience: int = 5


@dataclass
class CheckpointConfig:
    enabled: bool = True
    dir: str = "checkpoints"
    every_n_epochs: int = 1
    resume: Optional[str] = None  # "last", or a checkpoint path


@dataclass
class LightningTrainerConfig:
    type: str = "lightning"
    accelerator: str = "auto"
    devices: Any = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    precision: Optional[str] = None  # None: 32-true; "bf16-mixed", "16-mixed" on GPUs
    max_epochs: int = 20
    min_epochs: int = 1
    gradient_clip_val: Optional[float] = None
    gradient_clip_algorithm: str = "norm"  # norm | value
    accumulate_grad_batches: int = 1
    check_val_every_n_epoch: int = 1
    num_sanity_val_steps: int = 0  # Lightning's default is 2; the first epoch validates anyway
    model_summary: bool = False
    deterministic: bool = False
    # torch intra-op threads per process; 0 keeps torch's default (one per core). One thread is
    # as fast as two for small models on an idle 2-core machine and many times faster under
    # contention (measured: README, training section).
    threads: int = 1
    # Optimizer steps per Lightning training step with the in-memory loader: Lightning's own work
    # per step (~0.85 ms here, as much as a small MLP's math) is paid once per this many batches.
    # Applies without LR scheduler, gradient clipping, accumulation and mixed precision (those
    # keep Lightning's automatic optimization, one batch per step). 1: always automatic.
    steps_per_call: int = 1
    log_every_n_steps: int = 50
    limit_train_batches: Optional[float] = None
    limit_val_batches: Optional[float] = None
    progress_bar: Optional[bool] = None  # None: a bar on a terminal, plain lines otherwise
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
