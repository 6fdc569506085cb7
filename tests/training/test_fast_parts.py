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


def _typed(**sections):
    """A validated config of the built-in mlp model and Lightning trainer, with ``sections`` merged on."""
    from aiinfra.config.validate import validate
    from aiinfra.plugins.manager import get_plugins

    raw = OmegaConf.merge({"model": {"type": "mlp", "lr": 3e-3}, "trainer": {"type": "lightning"}}, sections)
    return validate(raw, get_plugins().registry)


@pytest.mark.parametrize(
    "batch,rows,scale,expected_batch,expected_lr",
    [
        (None, 200_000, True, 512, 3e-3 * math.sqrt(2)),  # auto batch 512: square-root rule
        (None, 4_000, True, 125, 3e-3),  # auto batch 125: never scaled down
        (None, 200_000, False, 512, 3e-3),  # switched off
        (512, 200_000, True, 512, 3e-3),  # an explicit batch size takes model.lr as it is
    ],
)
def test_plan_scales_the_learning_rate_with_the_automatic_batch_size(batch, rows, scale, expected_batch, expected_lr):
    from aiinfra.training.plan import plan_training

    plan = plan_training(_typed(data={"batch_size": batch, "scale_lr": scale}), train_rows=rows, n_features=16)
    assert plan.batch_size == expected_batch
    assert plan.lr == pytest.approx(expected_lr)


def test_plan_picks_the_loader_by_size_and_keeps_an_explicit_one():
    from aiinfra.config.schema import Loader
    from aiinfra.training.plan import MEMORY_BUDGET_BYTES, plan_training

    fits = MEMORY_BUDGET_BYTES // (4 * 16)
    assert plan_training(_typed(), train_rows=fits, n_features=16).loader == Loader.memory
    assert plan_training(_typed(), train_rows=fits + 1, n_features=16).loader == Loader.stream
    assert plan_training(_typed(data={"loader": "stream"}), train_rows=100, n_features=16).loader == Loader.stream
    # the raw frame read before encoding counts too: a wide table of strings streams sooner
    assert plan_training(_typed(), train_rows=fits // 2, n_features=16, raw_columns=20).loader == Loader.stream


def test_plan_resumes_from_an_existing_checkpoint_only(tmp_path):
    from aiinfra.errors import AiinfraError
    from aiinfra.training.plan import plan_training

    ckpt = {"dir": str(tmp_path), "resume": "last"}
    with pytest.raises(AiinfraError, match="cannot resume: checkpoint .*last.ckpt does not exist"):
        plan_training(_typed(trainer={"checkpoint": ckpt}), train_rows=100, n_features=4)
    (tmp_path / "last.ckpt").write_bytes(b"")
    plan = plan_training(_typed(trainer={"checkpoint": ckpt}), train_rows=100, n_features=4)
    assert plan.resume_from == str(tmp_path / "last.ckpt")
    assert plan_training(_typed(), train_rows=100, n_features=4).resume_from is None
    with pytest.raises(AttributeError):  # frozen: decided once
        plan.lr = 1.0


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
    module = ClassifierModule(model, lr=1e-2, threads=1, seed=3, micro_batch=32 if steps_per_call > 1 else None)
    train = TensorBatches(x, y, 32 * steps_per_call, shuffle=True, seed=3)
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(module, train)
    return {k: v.clone() for k, v in module.model.state_dict().items()}


def test_several_steps_per_call_train_exactly_like_one(tmp_path):
    """Same batches, same order, same optimizer steps: the same weights, to float precision."""
    one = _fit_weights(1, tmp_path / "a")
    several = _fit_weights(5, tmp_path / "b")  # 1000 rows / 32 = 32 batches: calls of 5, the last of 2
    assert one.keys() == several.keys()
    for name in one:
        assert torch.allclose(one[name], several[name], atol=1e-6), name


@pytest.mark.parametrize(
    "overrides,expected",
    [
        ({}, 16),
        ({"model.scheduler": "cosine"}, 1),
        ({"trainer.gradient_clip_val": 1.0}, 1),
        ({"trainer.accumulate_grad_batches": 2}, 1),
        ({"trainer.precision": "bf16-mixed"}, 1),
        ({"trainer.devices": 2, "trainer.strategy": "ddp_spawn"}, 1),
    ],
)
def test_steps_per_call_only_where_the_module_can_step_itself(overrides, expected):
    from aiinfra.training.plan import plan_training

    raw = OmegaConf.create({"trainer": {"steps_per_call": 16, "devices": 1}})
    for key, value in overrides.items():
        OmegaConf.update(raw, key, value, force_add=True)
    memory = plan_training(_typed(**raw, data={"loader": "memory"}), train_rows=4000, n_features=16)
    assert memory.steps_per_call == expected
    assert memory.micro_batch == (memory.batch_size if expected > 1 else None)
    assert memory.loader_batch == memory.batch_size * expected
    stream = plan_training(_typed(**raw, data={"loader": "stream"}), train_rows=4000, n_features=16)
    assert stream.steps_per_call == 1
