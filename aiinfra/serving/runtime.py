"""The serving runtime contract: what the server needs from a loaded model, and how one is loaded.

A *runtime* is a component of kind ``runtime`` (``register("runtime", "torch", target=...)``);
its target is a loader ``load(resolved, server_cfg) -> ServedModel``:

* ``resolved`` is an :class:`aiinfra.tracking.mlflow_setup.ResolvedModel`: the model directory
  (``resolved.path``), name, version, URI and run id. Its files exist only during the call (a
  registry download is deleted afterwards): the returned model must hold everything in memory.
* ``server_cfg`` is the typed ``cfg.server`` (an ``HttpServerConfig`` or a subclass of it, or a
  ``BatchServerConfig``); a runtime's own options are fields of its server schema's subclass.

``server.runtime`` picks the runtime (default ``torch``); the server, the batch scorer and hot
reload all load through :class:`ModelLoader`, so a runtime is written once and patches nothing.

Inputs. The wire formats (Open Inference Protocol, /invocations) are parsed by the model's
``inputs`` decoder: :class:`FloatRows` (the default) turns a request into a float32 matrix of the
model's features, in order. A runtime that takes raw typed columns (strings, nulls, dates) and
does its own preprocessing supplies its own decoder and gets its own batch type in
``predict_proba``; the batcher only needs ``len(batch)`` and ``inputs.concat``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from aiinfra.errors import PluginError
from aiinfra.plugins.manager import get_plugins
from aiinfra.serving import protocol
from aiinfra.tracking.mlflow_setup import remove_download, resolve_model  # imports mlflow only for registry URIs

log = logging.getLogger("aiinfra.serving")

#: OIP datatype of a label by numpy dtype kind (anything else: BYTES)
_LABEL_DATATYPES = {"i": "INT64", "u": "INT64", "f": "FP64", "b": "BOOL"}


class InputDecoder(Protocol):
    """Turns request bodies into the batch a model's ``predict_proba`` takes."""

    def from_v2(self, body: bytes, binary_header_length: str | None, max_rows: int) -> protocol.V2Request:
        """An Open Inference Protocol infer request (``.x``: the batch)."""

    def from_invocations(self, body: bytes, content_type: str, max_rows: int) -> Any:
        """An MLflow ``/invocations`` body (JSON or CSV)."""

    def concat(self, batches: list[Any]) -> Any:
        """Several requests' batches as one (dynamic batching)."""


@dataclass(frozen=True)
class FloatRows:
    """The default decoder: a float32 matrix ``[rows, len(features)]``, columns in the model's order."""

    features: list[str]

    def from_v2(self, body: bytes, binary_header_length: str | None, max_rows: int) -> protocol.V2Request:
        return protocol.parse_v2(body, binary_header_length, self.features, max_rows)

    def from_invocations(self, body: bytes, content_type: str, max_rows: int) -> np.ndarray:
        return protocol.parse_invocations(body, content_type, self.features, max_rows)

    def concat(self, batches: list[np.ndarray]) -> np.ndarray:
        return batches[0] if len(batches) == 1 else np.concatenate(batches)


@runtime_checkable
class ServedModel(Protocol):
    """What the HTTP server (and the batch scorer) needs from a loaded model.

    Every response and log row names ``name`` and ``version``; ``features`` and ``classes`` are the
    input columns and the predicted classes (``predict_proba``'s columns, in order); ``target`` is
    the training target's name (feedback labels are stored under it).
    """

    name: str
    version: str
    uri: str
    path: Path
    run_id: str | None
    features: list[str]
    classes: np.ndarray
    target: str
    platform: str  # V2 model metadata "platform", e.g. "aiinfra_pytorch", "aiinfra_onnxruntime"
    inputs: InputDecoder
    loaded_at: float

    @property
    def n_features(self) -> int: ...

    @property
    def label_datatype(self) -> str: ...

    def predict_proba(self, batch: Any) -> np.ndarray:
        """Class probabilities ``[len(batch), len(classes)]`` of a batch made by ``inputs``."""


#: the members of ServedModel, for the message when a runtime returns something else
_CONTRACT = (
    "name",
    "version",
    "uri",
    "path",
    "run_id",
    "features",
    "classes",
    "target",
    "platform",
    "inputs",
    "loaded_at",
    "n_features",
    "label_datatype",
    "predict_proba",
)


@dataclass
class LoadedModel:
    """A :class:`ServedModel` around any predictor with ``predict_proba(float32 rows)``: what the
    torch and onnx runtimes return. ``from_resolved`` fills in the names from the resolved URI."""

    predictor: Any
    name: str
    version: str
    uri: str
    path: Path
    run_id: str | None = None
    features: list[str] = field(default_factory=list)
    classes: np.ndarray = field(default_factory=lambda: np.empty(0))
    target: str = "target"
    platform: str = "aiinfra_pytorch"
    inputs: Any = None  # InputDecoder; None: FloatRows(features)
    loaded_at: float = 0.0

    def __post_init__(self) -> None:
        if self.inputs is None:
            self.inputs = FloatRows(list(self.features))

    @classmethod
    def from_resolved(cls, resolved: Any, predictor: Any, *, platform: str, **extra: Any) -> LoadedModel:
        meta = getattr(predictor, "meta", None) or {}
        return cls(
            predictor=predictor,
            name=str(resolved.name),
            version=str(resolved.version),
            uri=str(resolved.uri),
            path=Path(resolved.path),
            run_id=resolved.run_id,
            features=list(predictor.features),
            classes=np.asarray(predictor.classes),
            target=str(meta.get("target") or "target"),
            platform=platform,
            loaded_at=time.time(),
            **extra,
        )

    @property
    def n_features(self) -> int:
        return len(self.features)

    @property
    def label_datatype(self) -> str:
        """Open Inference Protocol datatype of the predicted label (the training target's type)."""
        return _LABEL_DATATYPES.get(self.classes.dtype.kind, "BYTES")

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        return self.predictor.predict_proba(batch)


def default_model_uri(cfg: Any) -> str:
    """``server.model_uri``, or the registry alias the ``register`` stage moves."""
    if cfg.server.model_uri:
        return str(cfg.server.model_uri)
    return f"models:/{cfg.register.model_name}@{cfg.register.alias}"


class ModelLoader:
    """Resolves a model URI and loads it with the configured runtime (``server.runtime``).

    One per process; the server's start, every hot reload and the batch scorer use it.
    """

    def __init__(self, cfg: Any, registry: Any = None):
        if registry is None:  # the process's plugins (cached)
            registry = get_plugins().registry
        self.cfg = cfg
        self.runtime = str(cfg.server.runtime)
        self._load: Callable[[Any, Any], Any] = registry.get("runtime", self.runtime).load()
        self.uri = default_model_uri(cfg)

    def resolve(self, uri: str | None = None) -> Any:
        """A URI (default: the configured one) resolved to a local model directory."""
        return resolve_model(uri or self.uri, self.cfg)

    def load(self, resolved: Any) -> ServedModel:
        """The model behind ``resolved``, warmed up; a registry download is deleted afterwards."""
        try:
            model = self._load(resolved, self.cfg.server)
        finally:
            # a registry download is a temporary copy: without this, every start and every reload
            # of a long-running server left one directory behind
            remove_download(resolved)
        if not isinstance(model, ServedModel):
            missing = [a for a in _CONTRACT if not hasattr(model, a)]
            raise PluginError(
                f"runtime '{self.runtime}' returned a {type(model).__name__}, which is not a "
                f"ServedModel (missing: {', '.join(missing)})",
                hint="return aiinfra.serving.runtime.LoadedModel, or implement ServedModel",
            )
        if model.n_features and isinstance(model.inputs, FloatRows):
            # one warm-up pass: the first forward pass allocates; no user request should pay for it
            model.predict_proba(np.zeros((1, model.n_features), dtype=np.float32))
        return model

    def __call__(self, uri: str | None = None) -> ServedModel:
        return self.load(self.resolve(uri))
