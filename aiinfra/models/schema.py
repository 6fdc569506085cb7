"""Config schemas of the built-in model families (``conf/model/*.yaml``). Import-light."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING




@dataclass
class MLPConfig:
    type: str = "mlp"
    hidden: int = 64
    layers: int = 2
    dropout: float = 0.1
    lr: float = 0.003
    weight_decay: float = 0.0
    scheduler: Optional[str] = None  # None | cosine | step | plateau


@dataclass
class CNNConfig:
    type: str = "cnn"
    channels: int = 16
    hidden: int = 64
    dropout: float = 0.1
    lr: float = 0.003
    weight_decay: float = 0.0
    image_shape: list[int] = field(default_factory=lambda: [1, 8, 8])
    scheduler: Optional[str] = None


