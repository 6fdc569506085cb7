"""The per-step shortcuts of the fast path keep the semantics of what they replace."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from aiinfra.models.mlp import FastDropout, MLPClassifier


def test_fast_dropout_is_dropout():
    torch.manual_seed(0)
    d = FastDropout(0.1)
    x = torch.ones(2000, 64)
    y = d(x)
    kept = (y != 0).float().mean().item()
    assert abs(kept - 0.9) < 0.005  # 128,000 draws: 4 standard errors is 0.0034
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 65536 / (65536 - round(0.1 * 65536))))
    assert abs(y.mean().item() - 1.0) < 0.01  # the expectation is unchanged
    d.eval()
    assert torch.equal(d(x), x)


def test_fast_dropout_follows_torch_seed_and_gradients_flow():
    def masks():
        torch.manual_seed(7)
        d = FastDropout(0.5)
        first = d(torch.ones(8, 8))
        d.reseed()  # what the training module does after reseeding torch at each epoch
        torch.manual_seed(7)
        return first, d(torch.ones(8, 8))

    a1, a2 = masks()
    b1, _ = masks()
    assert torch.equal(a1, b1) and torch.equal(a1, a2)  # same torch seed, same masks
    x = torch.ones(4, 4, requires_grad=True)
    FastDropout(0.5)(x).sum().backward()
    assert set(x.grad.unique().tolist()) <= {0.0, 2.0}


def test_mlp_state_dict_keys_unchanged():
    # saved models (weights.pt) from before FastDropout load into the new module
    keys = list(MLPClassifier(4, 2, hidden=8, layers=2).state_dict())
    assert keys == ["net.0.weight", "net.0.bias", "net.3.weight", "net.3.bias", "net.6.weight", "net.6.bias"]


class _Data:
    def __init__(self, rows):
        self.meta = {"rows": {"train": rows}}


@pytest.mark.parametrize("batch,rows,scale,expected", [
    (None, 200_000, True, 3e-3 * math.sqrt(2)),  # auto batch 512: square-root rule
    (None, 4_000, True, 3e-3),                   # auto batch 125: never scaled down
    (None, 200_000, False, 3e-3),                # switched off
    (512, 200_000, True, 3e-3),                  # an explicit batch size takes model.lr as it is
])
def test_learning_rate_follows_the_automatic_batch_size(batch, rows, scale, expected):
    from aiinfra.stages.train import learning_rate

    cfg = OmegaConf.create({"model": {"lr": 3e-3}, "data": {"batch_size": batch, "scale_lr": scale}})
    assert learning_rate(cfg, _Data(rows)) == pytest.approx(expected)
