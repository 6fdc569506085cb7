"""Multi-layer perceptron for tabular classification (a plain torch module; no Lightning)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn


class FastDropout(nn.Dropout):
    """``nn.Dropout`` with a cheaper mask on CPU: torch draws the Bernoulli mask one Mersenne
    Twister number per element (0.21 ms for a 512 x 64 batch here, more than the layer's matmul);
    numpy's PCG64 fills 16-bit integers in bulk (0.06 ms). Same distribution (keep probability
    1 - p, p rounded to 1/65536), scaled so the expectation is unchanged; identity in eval mode;
    torch's own dropout on other devices.

    The generator is seeded from torch's RNG at its first use, so ``torch.manual_seed`` decides the
    masks; :meth:`reseed` makes it draw a new seed at the next use (the training module calls it
    after reseeding torch at every epoch).
    """

    def __init__(self, p: float = 0.5):
        super().__init__(p)
        self._rng: np.random.Generator | None = None

    def reseed(self) -> None:
        self._rng = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p <= 0 or self.p >= 1 or x.device.type != "cpu" or not x.is_floating_point():
            return super().forward(x)
        if self._rng is None:
            self._rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
        drop = round(self.p * 65536)
        bits = torch.from_numpy(self._rng.integers(-32768, 32767, size=tuple(x.shape), dtype=np.int16, endpoint=True))
        return x * ((bits >= drop - 32768).to(x.dtype) * (65536 / (65536 - drop)))


class MLPClassifier(nn.Module):
    """``layers`` hidden layers of width ``hidden`` with ReLU and dropout; outputs class logits."""

    def __init__(self, n_features: int, n_classes: int, hidden: int = 64, layers: int = 2, dropout: float = 0.1):
        super().__init__()
        blocks: list[nn.Module] = []
        width = n_features
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.ReLU(), FastDropout(dropout)]
            width = hidden
        blocks.append(nn.Linear(width, n_classes))
        self.net = nn.Sequential(*blocks)

    @classmethod
    def from_config(cls, cfg: dict[str, Any], n_features: int, n_classes: int) -> MLPClassifier:
        return cls(n_features, n_classes, hidden=cfg["hidden"], layers=cfg["layers"], dropout=cfg["dropout"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
