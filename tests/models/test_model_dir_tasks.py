"""The model directory across tasks: a regression model predicts in the target's units, a model
directory written before tasks and contracts existed still loads as the classifier it is, the
task-specific methods refuse the other task with one clear error, and the standardizer leaves a
column that is constant in train (an unseen-category one-hot) at scale 1."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aiinfra.errors import AiinfraError
from aiinfra.models.model_dir import InferenceModel, Predictor, Standardize, build_network, save_model

MLP = {"hidden": 8, "layers": 1, "dropout": 0.0}


def _model(n_in: int, n_out: int, seed: int = 0) -> InferenceModel:
    torch.manual_seed(seed)
    model = InferenceModel(build_network("mlp", MLP, n_in, n_out), n_in)
    model.scaler.fit(torch.randn(64, n_in) * 3 + 1)
    return model.eval()


def test_regression_model_predicts_values_in_the_target_units(tmp_path):
    model = _model(3, 1)
    save_model(
        model,
        tmp_path,
        component="mlp",
        model_cfg=MLP,
        features=["a", "b", "c"],
        classes=[],
        target="price",
        task="regression",
        target_mean=1000.0,
        target_std=50.0,
    )
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["task"] == "regression" and meta["target_mean"] == 1000.0 and meta["target_std"] == 50.0
    assert meta["encoded_features"] == ["a", "b", "c"]
    p = Predictor.load(tmp_path)
    assert p.task == "regression" and p.classes == [] and p.contract is None and p.transform is None
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    with torch.no_grad():
        standardized = model(torch.from_numpy(x))[:, 0].double().numpy()
    values = p.predict_values(x)
    assert values.dtype == np.float64 and values.shape == (5,)
    np.testing.assert_allclose(values, standardized * 50.0 + 1000.0, rtol=1e-6)
    np.testing.assert_allclose(p.predict(x), values)
    with pytest.raises(AiinfraError, match="regression model: it has no class probabilities"):
        p.predict_proba(x)


def test_a_model_dir_from_before_tasks_loads_as_a_classifier(tmp_path):
    """model.json without task / encoded_features, no contract.json: what aiinfra wrote before."""
    model = _model(2, 2)
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    old_meta = {
        "format": 1,
        "component": "mlp",
        "config": MLP,
        "features": ["x0", "x1"],
        "classes": [0, 1],
        "target": "label",
        "input_dtype": "float32",
    }
    (tmp_path / "model.json").write_text(json.dumps(old_meta))
    p = Predictor.load(tmp_path)
    assert p.task == "binary" and p.features == ["x0", "x1"] and p.encoded_features == ["x0", "x1"]
    assert p.contract is None and p.transform is None
    import pandas as pd

    frame = pd.DataFrame({"x1": [0.5, 1.0], "x0": [1.0, 2.0]})
    x = p.encode(frame)
    assert x.dtype == np.float32 and x.tolist() == [[1.0, 0.5], [2.0, 1.0]]  # contract order
    proba = p.predict_proba(x)
    assert proba.shape == (2, 2) and np.allclose(proba.sum(1), 1)
    assert p.predict(x).tolist() == proba.argmax(1).tolist()
    with pytest.raises(AiinfraError, match="binary model: it predicts classes"):
        p.predict_values(x)


def test_three_classes_without_task_are_multiclass_and_stale_contract_files_go(tmp_path):
    (tmp_path / "contract.json").write_text("{}")  # left by an earlier training into the same dir
    save_model(
        _model(2, 3), tmp_path, component="mlp", model_cfg=MLP, features=["a", "b"], classes=["x", "y", "z"], target="t"
    )
    assert not (tmp_path / "contract.json").exists()
    assert Predictor.load(tmp_path).task == "multiclass"


def test_a_column_constant_in_train_keeps_scale_one():
    x = torch.tensor([[1.0, 0.0, 5.0], [3.0, 0.0, 5.0], [5.0, 0.0, 5.0]])
    s = Standardize(3).fit(x)
    assert s.std.tolist() == [2.0, 1.0, 1.0]
    # a category train never had (its one-hot column all 0 in train) stays 1, not 1e6
    assert s(torch.tensor([[3.0, 1.0, 5.0]])).tolist() == [[0.0, 1.0, 0.0]]


def test_not_a_model_dir_is_one_clear_error(tmp_path):
    with pytest.raises(AiinfraError, match="not an aiinfra model directory"):
        Predictor.load(tmp_path)
