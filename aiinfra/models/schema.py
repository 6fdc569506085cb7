"""Config schemas of the built-in model families (``conf/model/*.yaml``). Import-light.

A model section also holds its optimizer settings (``lr``, ``weight_decay``, ``scheduler``): the
training module reads them from whichever model is configured, so a plugin's model schema has the
same three fields (and may call :func:`check_optimizer` from its ``check``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from aiinfra.config.checks import at_least, require


class Scheduler(StrEnum):
    """The learning-rate schedule over ``trainer.max_epochs``; null: a constant learning rate."""

    cosine = "cosine"  # cosine annealing to 0 at the last epoch
    step = "step"  # x0.3 every third of the epochs
    plateau = "plateau"  # x0.1 when val_loss stops improving for 2 epochs


def check_optimizer(model: Any) -> None:
    """The rules of the optimizer fields every model section has."""
    require(model.lr > 0 and math.isfinite(model.lr), "lr", f"must be > 0, got {model.lr!r}")
    at_least(model, 0, "weight_decay")


def check_dropout(model: Any) -> None:
    require(0 <= model.dropout < 1, "dropout", f"must be in [0, 1), got {model.dropout!r}")


@dataclass
class MLPConfig:
    type: str = "mlp"
    hidden: int = 64
    layers: int = 2  # hidden layers; 0: a linear model
    dropout: float = 0.1
    lr: float = 0.003
    weight_decay: float = 0.0
    scheduler: Scheduler | None = None

    def check(self) -> None:
        at_least(self, 1, "hidden")
        at_least(self, 0, "layers")
        check_dropout(self)
        check_optimizer(self)


@dataclass
class CNNConfig:
    type: str = "cnn"
    channels: int = 16
    hidden: int = 64
    dropout: float = 0.1
    lr: float = 0.003
    weight_decay: float = 0.0
    # [channels, height, width] of one image; their product must equal the number of feature
    # columns, which only the prepared data knows (checked when the network is built)
    image_shape: list[int] = field(default_factory=lambda: [1, 8, 8])
    scheduler: Scheduler | None = None

    def check(self) -> None:
        at_least(self, 1, "channels", "hidden")
        require(
            len(self.image_shape) == 3 and all(v >= 1 for v in self.image_shape),
            "image_shape",
            f"must be [channels, height, width], each >= 1, got {list(self.image_shape)}",
        )
        check_dropout(self)
        check_optimizer(self)
