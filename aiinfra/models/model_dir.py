"""The model directory: weights as a state dict plus a JSON description. No pickle anywhere.

Layout (``models/model/``, a DVC out, and the artifacts of the MLflow model)::

    weights.pt   torch state dict of InferenceModel (scaler + network), loaded with weights_only=True
    model.json   component name and config, feature names, classes, versions

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
FORMAT_VERSION = 1


class Standardize(nn.Module):
    """(x - mean) / std with the training split's statistics, stored as buffers."""

    def __init__(self, n_features: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))

    def fit(self, x: torch.Tensor) -> Standardize:
        self.mean.copy_(x.mean(0))
        self.std.copy_(x.std(0).clamp_min(1e-6))
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


def build_network(component: str, model_cfg: dict[str, Any], n_features: int, n_classes: int) -> nn.Module:
    cls = get_plugins().registry.get("model", component).load()
    return cls.from_config(model_cfg, n_features, n_classes)


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
) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path / WEIGHTS)
    meta = {
        "format": FORMAT_VERSION,
        "component": component,
        "config": model_cfg,
        "features": list(features),
        "classes": [c.item() if hasattr(c, "item") else c for c in classes],
        "target": target,
        "input_dtype": "float32",
        "torch_version": torch.__version__,
        **(extra or {}),
    }
    (path / META).write_text(json.dumps(meta, indent=2, sort_keys=True))
    return path


@dataclass
class Predictor:
    """A loaded model: numpy float32 rows in, class probabilities or labels out."""

    module: InferenceModel
    features: list[str]
    classes: list[Any]
    meta: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path) -> Predictor:
        path = Path(path)
        if not (path / META).is_file():
            raise AiinfraError(
                f"{path} is not an aiinfra model directory (no {META}).",
                hint="train one with `aiinfra train`, or give models:/<name>@<alias>",
            )
        meta = json.loads((path / META).read_text())
        n_features, n_classes = len(meta["features"]), len(meta["classes"])
        net = build_network(meta["component"], meta["config"], n_features, n_classes)
        module = InferenceModel(net, n_features)
        # weights_only: a state dict is tensors; never unpickle arbitrary objects.
        state = torch.load(path / WEIGHTS, map_location="cpu", weights_only=True)
        module.load_state_dict(state)
        module.eval()
        return cls(module, list(meta["features"]), list(meta["classes"]), meta)

    @torch.inference_mode()
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        logits = self.module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
        return torch.softmax(logits, dim=1).numpy()

    def predict(self, x: np.ndarray) -> np.ndarray:
        idx = self.predict_proba(x).argmax(1)
        return np.asarray(self.classes)[idx]
