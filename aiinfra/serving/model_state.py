"""The served model: a loaded Predictor plus what every response and log row names (name, version).

The server holds one :class:`ServedModel` at a time and swaps the reference on reload; a batch
keeps the model it started with, so a reload never changes a prediction half-way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class ServedModel:
    predictor: Any  # aiinfra.models.artifact.Predictor
    name: str
    version: str
    uri: str
    path: Path
    run_id: str | None = None
    features: list[str] = field(default_factory=list)
    classes: np.ndarray = field(default_factory=lambda: np.empty(0))
    loaded_at: float = 0.0

    @property
    def n_features(self) -> int:
        return len(self.features)

    @property
    def label_datatype(self) -> str:
        """Open Inference Protocol datatype of the predicted label (the training target's type)."""
        kind = self.classes.dtype.kind
        return {"i": "INT64", "u": "INT64", "f": "FP64", "b": "BOOL"}.get(kind, "BYTES")

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.predictor.predict_proba(x)


def default_model_uri(cfg: Any) -> str:
    uri = cfg.server.get("model_uri")
    if uri:
        return str(uri)
    return f"models:/{cfg.register.model_name}@{cfg.register.alias}"


def resolve(uri: str, cfg: Any):
    """Resolve a model URI to a local directory (registry lookup for ``models:/...``)."""
    from aiinfra.tracking.mlflow_setup import resolve_model

    return resolve_model(uri, cfg)


def load_served_model(resolved: Any) -> ServedModel:
    import time

    from aiinfra.models.artifact import Predictor

    from aiinfra.tracking.mlflow_setup import remove_download

    try:
        predictor = Predictor.load(resolved.path)  # weights and metadata are in memory after this
    finally:
        # a registry download is a temporary copy: without this, every start and every reload
        # of a long-running server left one directory behind
        remove_download(resolved)
    classes = np.asarray(predictor.classes)
    model = ServedModel(predictor=predictor, name=str(resolved.name), version=str(resolved.version),
                        uri=str(resolved.uri), path=Path(resolved.path), run_id=resolved.run_id,
                        features=list(predictor.features), classes=classes, loaded_at=time.time())
    # one warm-up pass: the first forward pass allocates; no user request should pay for it
    model.predict_proba(np.zeros((1, model.n_features), dtype=np.float32))
    return model
