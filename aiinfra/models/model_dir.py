"""The model directory: weights as a state dict plus a JSON description. No pickle anywhere.

Layout (``models/model/``, a DVC out, and the artifacts of the MLflow model)::

    weights.pt       torch state dict of InferenceModel (scaler + network), loaded with weights_only=True
    model.json       component name and config, task, raw and encoded feature names, classes,
                     the regression target's train mean/std, versions
    contract.json    the data contract of the raw input columns (copied from the prepared data)
    preprocess.json  the fitted preprocessing that encodes them (copied from the prepared data)

A model directory written before contracts existed has neither JSON file: its inputs are the
float32 columns of ``features``, and it is a classifier.

:class:`Predictor` rebuilds the network through the component registry, so a plugin's model
family is served exactly like a built-in one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aiinfra.errors import AiinfraError
from aiinfra.plugins.manager import get_plugins

WEIGHTS = "weights.pt"
META = "model.json"
#: the files of the prepared data copied into the model directory (aiinfra.data.features names them)
CONTRACT_FILE, PREPROCESS_FILE = "contract.json", "preprocess.json"
FORMAT_VERSION = 2
REGRESSION = "regression"


def classification_task(n_classes: int) -> str:
    return "binary" if n_classes == 2 else "multiclass"


class Standardize(nn.Module):
    """(x - mean) / std with the training split's statistics, stored as buffers."""

    def __init__(self, n_features: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))

    def fit(self, x: torch.Tensor) -> Standardize:
        self.mean.copy_(x.mean(0))
        std = x.std(0)
        # a column constant in train (a one-hot column of a category train never has, such as
        # `<col>=__unknown__`) keeps scale 1: dividing by ~0 would turn a 1 at serving into 1e6
        self.std.copy_(torch.where(std > 0, std.clamp_min(1e-6), torch.ones_like(std)))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class InferenceModel(nn.Module):
    """What is trained, saved and served: standardisation in front of the network."""

    def __init__(self, net: nn.Module, n_features: int):
        super().__init__()
        self.scaler = Standardize(n_features)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.scaler(x))


def build_network(component: str, model_cfg: dict[str, Any], n_features: int, n_outputs: int) -> nn.Module:
    """The registered model family's network: ``n_features`` encoded inputs, ``n_outputs``
    outputs (one per class; 1 for regression)."""
    cls = get_plugins().registry.get("model", component).load()
    return cls.from_config(model_cfg, n_features, n_outputs)


def n_outputs(task: str, n_classes: int) -> int:
    return 1 if task == REGRESSION else n_classes


def save_model(
    model: InferenceModel,
    path: Path,
    *,
    component: str,
    model_cfg: dict[str, Any],
    features: list[str],
    classes: list[Any],
    target: str,
    extra: dict[str, Any] | None = None,
    task: str | None = None,
    encoded_features: list[str] | None = None,
    target_mean: float | None = None,
    target_std: float | None = None,
    contract: Any = None,
    transform: Any = None,
) -> Path:
    """Write the model directory. ``task`` None: a classifier of ``classes``; ``encoded_features``
    None: the network takes ``features`` as they are; ``contract`` and ``transform`` (the prepared
    data's DataContract and FeatureTransform) are written beside the weights as ``contract.json``
    and ``preprocess.json``, the same files the prepared data holds."""
    path.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path / WEIGHTS)
    task = str(task) if task is not None else classification_task(len(classes))
    meta = {
        "format": FORMAT_VERSION,
        "component": component,
        "config": model_cfg,
        "task": task,
        "features": list(features),
        "encoded_features": list(encoded_features if encoded_features is not None else features),
        "classes": [c.item() if hasattr(c, "item") else c for c in classes],
        "target": target,
        "input_dtype": "float32",
        "torch_version": torch.__version__,
        **(extra or {}),
    }
    if task == REGRESSION:
        meta["target_mean"] = float(target_mean if target_mean is not None else 0.0)
        meta["target_std"] = float(target_std if target_std is not None else 1.0)
    for name, part in ((CONTRACT_FILE, contract), (PREPROCESS_FILE, transform)):
        if part is not None:
            part.save(path)
        else:
            (path / name).unlink(missing_ok=True)  # a stale one from an earlier training would lie
    (path / META).write_text(json.dumps(meta, indent=2, sort_keys=True))
    return path


@dataclass
class Predictor:
    """A loaded model: encoded float32 rows in; class probabilities and labels (classification) or
    values in the target's units (regression) out. :meth:`encode` turns raw rows (pandas, checked
    by ``contract.check_frame``) into those float32 rows."""

    module: InferenceModel
    features: list[str]
    classes: list[Any]
    meta: dict[str, Any]
    contract: Any = None  # aiinfra.data.features.DataContract; None: a model dir without contract.json
    transform: Any = None  # aiinfra.data.features.FeatureTransform; None: raw float32 columns go in

    @classmethod
    def load(cls, path: str | Path) -> Predictor:
        path = Path(path)
        if not (path / META).is_file():
            raise AiinfraError(
                f"{path} is not an aiinfra model directory (no {META}).",
                hint="train one with `aiinfra train`, or give models:/<name>@<alias>",
            )
        meta = json.loads((path / META).read_text())
        meta.setdefault("task", classification_task(len(meta["classes"])))  # written before tasks existed
        encoded = meta.get("encoded_features") or meta["features"]
        n_in = len(encoded)
        net = build_network(meta["component"], meta["config"], n_in, n_outputs(meta["task"], len(meta["classes"])))
        module = InferenceModel(net, n_in)
        # weights_only: a state dict is tensors; never unpickle arbitrary objects.
        state = torch.load(path / WEIGHTS, map_location="cpu", weights_only=True)
        module.load_state_dict(state)
        module.eval()
        contract = transform = None
        if (path / CONTRACT_FILE).is_file():
            from aiinfra.data.features import DataContract, FeatureTransform  # pandas: only for such models

            contract = DataContract.load(path)
            if (path / PREPROCESS_FILE).is_file():
                transform = FeatureTransform.load(path)
        return cls(module, list(meta["features"]), list(meta["classes"]), meta, contract, transform)

    @property
    def task(self) -> str:
        return str(self.meta["task"])

    @property
    def encoded_features(self) -> list[str]:
        return list(self.meta.get("encoded_features") or self.features)

    @property
    def is_regression(self) -> bool:
        return self.task == REGRESSION

    def encode(self, frame: Any) -> np.ndarray:
        """Raw rows (a DataFrame holding :attr:`features`, already checked by
        ``contract.check_frame``) -> the float32 matrix the network takes."""
        if self.transform is not None:
            return self.transform.transform(frame)
        return frame[self.features].to_numpy(dtype=np.float32)

    @torch.inference_mode()
    def _forward(self, x: np.ndarray) -> torch.Tensor:
        return self.module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        if self.is_regression:
            raise AiinfraError(
                "this is a regression model: it has no class probabilities.",
                hint="use predict_values (values in the target's units)",
            )
        return torch.softmax(self._forward(x), dim=1).numpy()

    def predict_values(self, x: np.ndarray) -> np.ndarray:
        """Regression: float64 [n] in the target's units (the network predicts the standardized target)."""
        if not self.is_regression:
            raise AiinfraError(
                f"this is a {self.task} model: it predicts classes, not values.",
                hint="use predict_proba (class probabilities) or predict (labels)",
            )
        out = self._forward(x)[:, 0].double().numpy()
        return out * float(self.meta.get("target_std", 1.0)) + float(self.meta.get("target_mean", 0.0))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Labels (classification) or values (regression) of encoded rows."""
        if self.is_regression:
            return self.predict_values(x)
        idx = self.predict_proba(x).argmax(1)
        return np.asarray(self.classes)[idx]
