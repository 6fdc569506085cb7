"""Small CNN for images stored as flat pixel columns (e.g. scikit-learn's 8x8 digits)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from aiinfra.errors import ConfigError


class CNNClassifier(nn.Module):
    def __init__(
        self,
        n_features: int,
        n_classes: int,
        image_shape=(1, 8, 8),
        channels: int = 16,
        hidden: int = 64,
        dropout: float = 0.1,
    ):
        super().__init__()
        c, h, w = (int(v) for v in image_shape)
        if c * h * w != n_features:  # the one rule validation cannot check: it needs the prepared data
            raise ConfigError(
                f"model.image_shape {list(image_shape)} holds {c * h * w} pixels but the data has "
                f"{n_features} feature columns.",
                hint="set model.image_shape=[channels,height,width] to match the source",
            )
        self.shape = (c, h, w)
        self.features = nn.Sequential(
            nn.Conv2d(c, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels * 2, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d((max(1, h // 2), max(1, w // 2))),
        )
        flat = channels * 2 * max(1, h // 2) * max(1, w // 2)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes)
        )

    @classmethod
    def from_config(cls, cfg: dict[str, Any], n_features: int, n_classes: int) -> CNNClassifier:
        return cls(
            n_features,
            n_classes,
            image_shape=cfg["image_shape"],
            channels=cfg["channels"],
            hidden=cfg["hidden"],
            dropout=cfg["dropout"],
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.view(x.shape[0], *self.shape)))
