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


def _fit_weights(steps_per_call: int, tmp_path) -> dict:
    import lightning as L

    from aiinfra.models.model_dir import InferenceModel
    from aiinfra.training.data import TensorBatches
    from aiinfra.training.module import ClassifierModule

    torch.manual_seed(0)
    x = torch.randn(1000, 6)
    y = (x[:, 0] + x[:, 1] > 0).long()
    L.seed_everything(3, verbose=False)
    model = InferenceModel(MLPClassifier(6, 2, hidden=16, layers=2, dropout=0.1), 6)
    module = ClassifierModule(model, lr=1e-2, threads=1, seed=3,
                              micro_batch=32 if steps_per_call > 1 else None)
    train = TensorBatches(x, y, 32 * steps_per_call, shuffle=True, seed=3)
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path))
    trainer.fit(module, train)
    return {k: v.clone() for k, v in module.model.state_dict().items()}


def test_several_steps_per_call_train_exactly_like_one(tmp_path):
    """Same batches, same order, same optimizer steps: the same weights, to float precision."""
    one = _fit_weights(1, tmp_path / "a")
    several = _fit_weights(5, tmp_path / "b")  # 1000 rows / 32 = 32 batches: calls of 5, the last of 2
    assert one.keys() == several.keys()
    for name in one:
        assert torch.allclose(one[name], several[name], atol=1e-6), name


@pytest.mark.parametrize("overrides,expected", [
    ({}, 16),
    ({"model.scheduler": "cosine"}, 1),
    ({"trainer.gradient_clip_val": 1.0}, 1),
    ({"trainer.accumulate_grad_batches": 2}, 1),
    ({"trainer.precision": "bf16-mixed"}, 1),
    ({"trainer.devices": 2, "trainer.strategy": "ddp_spawn"}, 1),
])
def test_steps_per_call_only_where_the_module_can_step_itself(overrides, expected):
    from aiinfra.stages.train import steps_per_call

    cfg = OmegaConf.create({"model": {"scheduler": None}, "trainer": {
        "steps_per_call": 16, "gradient_clip_val": None, "accumulate_grad_batches": 1, "precision": None,
        "devices": 1, "num_nodes": 1, "strategy": "auto"}})
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value)
    assert steps_per_call(cfg, "memory") == expected
    assert steps_per_call(cfg, "stream") == 1
