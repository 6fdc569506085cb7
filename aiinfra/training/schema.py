"""Config schema of the built-in Lightning trainer (``conf/trainer/*.yaml``). Import-light.

Every value a Lightning option can take that aiinfra knows about is checked here, in validation,
before torch is imported; what depends on the machine (is there a GPU?) or on the prepared data is
checked when the trainer is built (:mod:`aiinfra.training.trainer`, :mod:`aiinfra.training.plan`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from aiinfra.config.checks import at_least, fail, require
from aiinfra.errors import choices_text, did_you_mean


class Accelerator(StrEnum):
    """Lightning's accelerators; ``gpu`` is Lightning's alias of ``cuda`` (or ``mps``), ``auto`` picks."""

    auto = "auto"
    cpu = "cpu"
    gpu = "gpu"
    cuda = "cuda"
    mps = "mps"
    tpu = "tpu"


#: what ``trainer.precision`` takes: Lightning's precisions and aiinfra's ``auto-mixed`` (bf16-mixed
#: on GPUs with bf16, 16-mixed on older ones, full precision on CPU). Not an enum: OmegaConf looks
#: enum members up by name, and ``16-mixed`` cannot be one.
PRECISIONS = (
    "auto-mixed",
    "16-mixed",
    "bf16-mixed",
    "32-true",
    "64-true",
    "16-true",
    "bf16-true",
    "transformer-engine",
    "transformer-engine-float16",
    "16",
    "32",
    "64",
    "bf16",
)


class ClipAlgorithm(StrEnum):
    """How ``gradient_clip_val`` clips: the gradients' global ``norm``, or each ``value``."""

    norm = "norm"
    value = "value"


class MonitorMode(StrEnum):
    """Whether the monitored metric improves when it goes down (``min``, a loss) or up (``max``)."""

    min = "min"
    max = "max"


class Loss(StrEnum):
    """The training loss. ``auto``: ``cross_entropy`` for a classification task, ``mse`` for
    regression. ``mse`` and ``huber`` are computed on the standardized target (the train split's
    mean and standard deviation), so ``huber``'s threshold of 1 is one standard deviation."""

    auto = "auto"
    cross_entropy = "cross_entropy"
    mse = "mse"
    huber = "huber"


#: the losses of a regression task; every other one is a classification loss
REGRESSION_LOSSES = (Loss.mse, Loss.huber)


class ClassWeights(StrEnum):
    """``balanced``: each class weighs n_rows / (n_classes x its rows) in the loss, counted on
    the train split (scikit-learn's ``class_weight="balanced"``)."""

    balanced = "balanced"


def resolve_loss(loss: Loss | str, class_weights: ClassWeights | str | None, task: str) -> Loss:
    """The loss for the prepared data's task (``binary``, ``multiclass`` or ``regression``): the
    rule validation cannot check, since only the prepared data knows its task. A mismatch is one
    ConfigError naming the key, the task and the losses that fit it."""
    from aiinfra.errors import ConfigError

    loss = Loss(loss)
    regression = task == "regression"
    if loss == Loss.auto:
        loss = Loss.mse if regression else Loss.cross_entropy
    fits = loss in REGRESSION_LOSSES if regression else loss not in REGRESSION_LOSSES
    if not fits:
        valid = ", ".join(["auto", *REGRESSION_LOSSES] if regression else ["auto", Loss.cross_entropy])
        raise ConfigError(
            f"trainer.loss={loss} is a {'classification' if regression else 'regression'} loss, "
            f"but the prepared data's task is {task}.",
            hint=f"for a {task} task use trainer.loss= one of {valid}",
        )
    if class_weights is not None and regression:
        raise ConfigError(
            f"trainer.class_weights={class_weights} weighs classes, but the prepared data's task is regression.",
            hint="drop trainer.class_weights (null) for a regression task",
        )
    return loss


#: ``ckpt_path`` words of Lightning that aiinfra does not pass on: ``resume`` is ``last`` or a path
_LIGHTNING_CKPT_WORDS = ("best", "hpc", "registry")


@dataclass
class EarlyStoppingConfig:
    enabled: bool = True
    monitor: str = "val_loss"
    mode: MonitorMode = MonitorMode.min
    patience: int = 5

    def check(self) -> None:
        at_least(self, 0, "patience")
        require(bool(self.monitor), "monitor", "must name a logged metric (val_loss, val_acc, train_loss)")


@dataclass
class CheckpointConfig:
    enabled: bool = True
    dir: str = "checkpoints"
    every_n_epochs: int = 1  # 0: only last.ckpt at the end of each epoch's validation
    resume: str | None = None  # "last" (<dir>/last.ckpt), or a checkpoint file's path

    def check(self) -> None:
        at_least(self, 0, "every_n_epochs")
        if self.resume is None:
            return
        require(bool(self.resume.strip()), "resume", "must be null, 'last' or a checkpoint path, got ''")
        require(
            self.resume not in _LIGHTNING_CKPT_WORDS,
            "resume",
            f"must be null, 'last' or a checkpoint path, got {self.resume!r}",
            hint="trainer.checkpoint.resume=last resumes from <trainer.checkpoint.dir>/last.ckpt",
        )


@dataclass
class LightningTrainerConfig:
    type: str = "lightning"
    accelerator: Accelerator = Accelerator.auto
    devices: Any = "auto"  # "auto", a number of devices, -1 (all), or a list of device indices
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str | None = None  # None: 32-true; one of PRECISIONS
    max_epochs: int = 20
    min_epochs: int = 1
    gradient_clip_val: float | None = None
    gradient_clip_algorithm: ClipAlgorithm = ClipAlgorithm.norm
    accumulate_grad_batches: int = 1
    check_val_every_n_epoch: int = 1
    num_sanity_val_steps: int = 0  # Lightning's default is 2; the first epoch validates anyway; -1: all
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
    # a share of the batches (0.0-1.0) or a whole number of batches per epoch; None: all
    limit_train_batches: float | None = None
    limit_val_batches: float | None = None
    progress_bar: bool | None = None  # None: a bar on a terminal, plain lines otherwise
    # auto: cross_entropy (classification) or mse (regression); checked against the task at train time
    loss: Loss = Loss.auto
    class_weights: ClassWeights | None = None  # balanced: weights from the train split's class counts
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)

    def check(self) -> None:
        at_least(
            self,
            1,
            "num_nodes",
            "accumulate_grad_batches",
            "check_val_every_n_epoch",
            "steps_per_call",
            "log_every_n_steps",
        )
        # -1 is Lightning's "no limit" (early stopping or a time limit ends the run)
        require(
            self.max_epochs == -1 or self.max_epochs >= 1,
            "max_epochs",
            f"must be >= 1, or -1 for no limit, got {self.max_epochs!r}",
        )
        at_least(self, 0, "min_epochs", "threads", "gradient_clip_val")
        at_least(self, -1, "num_sanity_val_steps")
        require(
            self.max_epochs == -1 or self.min_epochs <= self.max_epochs,
            "min_epochs",
            f"must be <= trainer.max_epochs ({self.max_epochs}), got {self.min_epochs}",
        )
        if self.precision is not None and self.precision not in PRECISIONS:
            fail(
                "precision",
                f"unknown precision {self.precision!r}." + did_you_mean(self.precision, PRECISIONS),
                hint=f"one of: null (full precision), {choices_text(PRECISIONS)}",
            )
        for key in ("limit_train_batches", "limit_val_batches"):
            limit = getattr(self, key)
            if limit is not None:
                require(
                    limit >= 0 and (limit <= 1 or limit == int(limit)),
                    key,
                    f"must be a share between 0.0 and 1.0 or a whole number of batches, got {limit!r}",
                )
        self._check_devices()
        if os.environ.get("TORCHELASTIC_RUN_ID") and self.devices == "auto":
            fail(
                "devices",
                "must be set explicitly under torchrun (auto would start independent single-process trainings).",
                hint="trainer.devices=<processes per node> trainer.num_nodes=<nodes>",
            )

    def _check_devices(self) -> None:
        devices = self.devices
        if isinstance(devices, bool):
            fail("devices", f"must be 'auto', a number of devices or a list of device indices, got {devices!r}")
        if isinstance(devices, int):
            require(devices >= 1 or devices == -1, "devices", f"must be >= 1 (or -1: all), got {devices}")
        elif isinstance(devices, str):
            text = devices.strip()
            require(
                text == "auto" or text.lstrip("-").isdigit() or all(p.strip().isdigit() for p in text.split(",")),
                "devices",
                f"must be 'auto', a number of devices or a list of device indices, got {devices!r}",
            )
        elif isinstance(devices, (list, tuple)):
            require(
                bool(devices) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in devices),
                "devices",
                f"a list of devices holds device indices (>= 0), got {list(devices)!r}",
            )
        else:
            fail("devices", f"must be 'auto', a number of devices or a list of device indices, got {devices!r}")
