"""The onnx runtime on models trained on typed columns: the data contract and the fitted
preprocessing travel in the ONNX file; raw rows are checked and encoded as the torch runtime does;
regression graphs answer values. Predictions equal the torch Predictor's."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import orjson
import pandas as pd
import pytest

from aiinfra.models.model_dir import Predictor


def mixed_model(path, task: str):
    """A model directory on numbers with gaps, a category, a boolean and a date, built with the
    real feature code (what prepare and train write); untrained weights."""
    import torch

    from aiinfra.data.features import FeaturesConfig, FeatureTransform, Task, infer_contract
    from aiinfra.models.model_dir import InferenceModel, build_network, save_model

    rng = np.random.default_rng(0)
    n = 200
    income = rng.normal(50, 10, n)
    income[::9] = np.nan
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n).astype(float),
            "income": income,
            "city": rng.choice(["Lyon", "Oslo", "Riga"], n),
            "member": rng.random(n) < 0.5,
            "signup": (pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D")).strftime(
                "%Y-%m-%d"
            ),
        }
    )
    frame["target"] = rng.normal(0, 5, n).round(3) if task == "regression" else rng.integers(0, 2, n)
    cfg = FeaturesConfig(task=Task(task))
    train = frame.index[:160]
    contract = infer_contract(frame, SimpleNamespace(target="target", columns={}), cfg, train)
    transform = FeatureTransform.fit(frame.loc[train], contract, cfg)
    x = transform.transform(contract.check_frame(frame.loc[train]))
    classes = [] if task == "regression" else list(contract.classes)
    torch.manual_seed(0)
    net = build_network("mlp", {"hidden": 8, "layers": 1, "dropout": 0.0}, x.shape[1], len(classes) or 1)
    module = InferenceModel(net, x.shape[1])
    module.scaler.fit(torch.from_numpy(x))
    save_model(
        module,
        path,
        component="mlp",
        model_cfg={"hidden": 8, "layers": 1, "dropout": 0.0},
        features=contract.features,
        classes=classes,
        target="target",
        task=task,
        encoded_features=list(transform.output_names),
        target_mean=2.0 if task == "regression" else None,
        target_std=3.0 if task == "regression" else None,
        contract=contract,
        transform=transform,
    )
    rows = frame.drop(columns="target").iloc[160:170].astype(object)
    return path, rows.where(rows.notna(), None)


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_onnx_serves_raw_rows_like_torch(tmp_path, task):
    from aiinfra.serving.runtime import predict_batch
    from aiinfra.tracking.mlflow_setup import ResolvedModel
    from aiinfra_onnx.runtime import load
    from aiinfra_onnx.schema import OnnxServerConfig

    model_dir, rows = mixed_model(tmp_path / "model", task)
    local = shutil.copytree(model_dir, tmp_path / "served" / "model")
    served = load(ResolvedModel(str(local), local, "model", "local"), OnnxServerConfig())
    shutil.rmtree(local)  # everything is in memory: the contract came from the ONNX file
    assert served.task == task and served.contract is not None
    recs = [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()} for r in rows.to_dict("records")]
    batch = served.inputs.from_invocations(orjson.dumps({"dataframe_records": recs}), "application/json", 100)
    prepared, refused = served.inputs.prepare(batch)
    assert not refused
    out, index = predict_batch(served, prepared)
    torch_model = Predictor.load(model_dir)
    x = torch_model.encode(torch_model.contract.check_frame(rows))
    if task == "regression":
        assert index is None
        np.testing.assert_allclose(out, torch_model.predict_values(x), rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_allclose(out, torch_model.predict_proba(x), atol=1e-5)
