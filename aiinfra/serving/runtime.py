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
``predict_proba``; the batcher only needs ``len(batch)`` and ``inputs.concat``. A decoder may also
have ``prepare(batch) -> (batch, {request position: exception})``: the batcher calls it once per
forward pass (off the event loop with ``inference=thread``), so costly per-row work (checking raw
columns against the data contract, encoding them) is paid per batch, and a request that fails it
fails alone (:class:`aiinfra.serving.tabular.RawRows`: a model with a data contract).

Tasks. ``task`` is ``binary``, ``multiclass`` or ``regression``. A classifier has ``classes`` and
``predict_proba``; a regression model has no classes (an empty array) and ``predict_values(batch)``:
float64 values in the target's units, which the responses carry instead of labels and
probabilities.
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
from aiinfra.governance.signing import verify_model_dir
from aiinfra.plugins.manager import get_plugins
from aiinfra.serving import protocol
from aiinfra.tracking.mlflow_setup import remove_download, resolve_model  # imports mlflow only for registry URIs

log = logging.getLogger("aiinfra.serving")

#: OIP datatype of a label by numpy dtype kind (anything else: BYTES)
_LABEL_DATATYPES = {"i": "INT64", "u": "INT64", "f": "FP64", "b": "BOOL"}

REGRESSION = "regression"


def task_of(predictor: Any, classes: Any) -> str:
    """The task of a loaded predictor: its ``task``, its ``model.json``'s, or (a model written before
    tasks existed) classification by its number of classes."""
    task = getattr(predictor, "task", None) or (getattr(predictor, "meta", None) or {}).get("task")
    if task:
        return str(task)
    return "binary" if len(classes) <= 2 else "multiclass"


class InputDecoder(Protocol):
    """Turns request bodies into the batch a model's ``predict_proba`` takes."""

    def from_v2(self, body: bytes, binary_header_length: str | None, max_rows: int) -> protocol.V2Request:
        """An Open Inference Protocol infer request (``.x``: the batch)."""

    def from_invocations(self, body: bytes, content_type: str, max_rows: int) -> Any:
        """An MLflow ``/invocations`` body (JSON or CSV)."""

    def concat(self, batches: list[Any]) -> Any:
        """Several requests' batches as one (dynamic batching)."""


def raw_inputs(predictor: Any) -> Any:
    """The ``inputs`` decoder of a predictor with ``contract`` and ``transform``: raw rows (strings,
    nulls, dates) checked against its data contract and encoded, when its preprocessing is not the
    identity; None (float32 rows, the fast path) otherwise. The torch and onnx runtimes use it."""
    transform = getattr(predictor, "transform", None)
    if getattr(predictor, "contract", None) is None or transform is None or transform.is_identity:
        return None
    from aiinfra.serving.tabular import RawRows  # pandas: only for such models

    return RawRows(predictor.contract, transform, protocol.output_names(task_of(predictor, predictor.classes)))


@dataclass(frozen=True)
class FloatRows:
    """The default decoder: a float32 matrix ``[rows, len(features)]``, columns in the model's order."""

    features: list[str]

    #: the V2 outputs a request may ask for (protocol.output_names(task))
    outputs: tuple[str, ...] = protocol.OUTPUT_NAMES

    def from_v2(self, body: bytes, binary_header_length: str | None, max_rows: int) -> protocol.V2Request:
        return protocol.parse_v2(body, binary_header_length, self.features, max_rows, self.outputs)

    def from_invocations(self, body: bytes, content_type: str, max_rows: int) -> np.ndarray:
        return protocol.parse_invocations(body, content_type, self.features, max_rows)

    def concat(self, batches: list[np.ndarray]) -> np.ndarray:
        return batches[0] if len(batches) == 1 else np.concatenate(batches)


@runtime_checkable
class ServedModel(Protocol):
    """What the HTTP server (and the batch scorer) needs from a loaded model.

    Every response and log row names ``name`` and ``version``; ``features`` and ``classes`` are the
    input columns and the predicted classes (``predict_proba``'s columns, in order; empty for
    regression); ``target`` is the training target's name (feedback labels are stored under it);
    ``task`` is ``binary``, ``multiclass`` or ``regression`` (then ``predict_values(batch)`` gives
    the predictions). Optional: ``contract``, the model's data contract
    (:class:`aiinfra.data.features.DataContract`; absent or None: all-float inputs), which the
    metadata and the OpenAPI document describe column by column.
    """

    name: str
    version: str
    uri: str
    path: Path
    run_id: str | None
    features: list[str]
    classes: np.ndarray
    target: str
    task: str
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
    "task",
    "platform",
    "inputs",
    "loaded_at",
    "n_features",
    "label_datatype",
    "predict_proba",
)


@dataclass
class LoadedModel:
    """A :class:`ServedModel` around any predictor with ``predict_proba(float32 rows)`` (regression:
    ``predict_values``): what the torch and onnx runtimes return. ``from_resolved`` fills in the
    names from the resolved URI, the task and the contract from the predictor."""

    predictor: Any
    name: str
    version: str
    uri: str
    path: Path
    run_id: str | None = None
    features: list[str] = field(default_factory=list)
    classes: np.ndarray = field(default_factory=lambda: np.empty(0))
    target: str = "target"
    task: str = ""  # "": classification by the number of classes
    contract: Any = None
    platform: str = "aiinfra_pytorch"
    inputs: Any = None  # InputDecoder; None: FloatRows(features)
    loaded_at: float = 0.0

    def __post_init__(self) -> None:
        if not self.task:
            self.task = task_of(None, self.classes)
        if self.inputs is None:
            self.inputs = FloatRows(list(self.features), protocol.output_names(self.task))

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
            task=task_of(predictor, predictor.classes),
            contract=getattr(predictor, "contract", None),
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

    @property
    def regression(self) -> bool:
        return self.task == REGRESSION

    def predict_proba(self, batch: Any) -> np.ndarray:
        return self.predictor.predict_proba(_matrix(batch))

    def predict_values(self, batch: Any) -> np.ndarray:
        return np.asarray(self.predictor.predict_values(_matrix(batch)), dtype=np.float64)


def _matrix(batch: Any) -> Any:
    """The model's input of a batch: float32 rows as they are, a prepared raw batch's encoded rows."""
    return batch if isinstance(batch, np.ndarray) else getattr(batch, "matrix", batch)


def predict_batch(model: Any, batch: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """(output, argmax class index) of a batch: probabilities and their argmax for a classifier,
    (float64 values, None) for a regression model. The batcher and the batch scorer call this."""
    if getattr(model, "task", "") == REGRESSION:
        return model.predict_values(batch), None
    proba = model.predict_proba(batch)
    return proba, proba.argmax(1)


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
        self.verdict: Any = None  # the last loaded directory's signature verdict

    def resolve(self, uri: str | None = None) -> Any:
        """A URI (default: the configured one) resolved to a local model directory."""
        return resolve_model(uri or self.uri, self.cfg)

    def load(self, resolved: Any) -> ServedModel:
        """The model behind ``resolved``, warmed up; a registry download is deleted afterwards.

        The directory's signature is verified first (``signing.mode``; aiinfra.governance.signing),
        before any runtime reads a file of it: with ``require`` a changed, added or removed file, an
        unsigned directory or an untrusted signer is one error, and a hot reload keeps serving the
        version it has."""
        try:
            self.verify(resolved)
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
        _warm_up(model)
        return model

    def verify(self, resolved: Any) -> Any:
        """The signature verdict of ``resolved``'s directory (raises in ``signing.mode=require``).
        A config without a ``signing`` section (a hand-built one, e.g. a plugin's test) checks nothing."""
        signing_cfg = getattr(self.cfg, "signing", None)
        if signing_cfg is None:
            return None
        what = resolved.uri if str(resolved.version) == "local" else f"{resolved.uri} (version {resolved.version})"
        self.verdict = verify_model_dir(Path(resolved.path), signing_cfg, purpose="serve", what=what)
        return self.verdict

    def __call__(self, uri: str | None = None) -> ServedModel:
        return self.load(self.resolve(uri))


def _warm_up(model: Any) -> None:
    """One pass before the first request: the first forward pass allocates (and a raw-row decoder's
    first check and encoding import and compile pandas paths); no user request should pay for it."""
    if isinstance(model.inputs, FloatRows):
        batch = np.zeros((1, model.n_features), dtype=np.float32) if model.n_features else None
    else:
        warm = getattr(model.inputs, "warmup_batch", None)
        batch = warm() if warm is not None else None
    if batch is not None:
        predict_batch(model, batch)
