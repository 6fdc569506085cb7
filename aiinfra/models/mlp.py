"""Multi-layer perceptron for tabular classification (a plain torch module; no Lightning)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class MLPClassifier(nn.Module):
    """``layers`` hidden layers of width ``hidden`` with ReLU and dropout; outputs class logits."""

    def __init__(self, n_features: int, n_classes: int, hidden: int = 64, layers: int = 2, dropout: float = 0.1):
        super().__init__()
        blocks: list[nn.Module] = []
        width = n_features
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        blocks.append(nn.Linear(width, n_classes))
        self.net = nn.Sequential(*blocks)

    @classmethod
    def from_config(cls, cfg: dict[str, Any], n_features: int, n_classes: int) -> MLPClassifier:
        return cls(n_features, n_classes, hidden=cfg["hidden"], layers=cfg["layers"], dropout=cfg["dropout"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
