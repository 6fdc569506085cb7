"""The ``onnx`` serving runtime: an onnxruntime predictor, loaded from a model directory's ONNX export."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from aiinfra.errors import AiinfraError
from aiinfra.governance.signing import signed_files
from aiinfra.serving.runtime import LoadedModel, raw_inputs
from aiinfra_onnx.export import INPUT, export, read_props
from aiinfra_onnx.schema import OnnxServerConfig


class OnnxPredictor:
    """``features``, ``classes``, ``meta``, ``task``, ``contract``/``transform`` (a model on typed
    columns, else None) and ``predict_proba(float32 rows)`` (regression: ``predict_values``), on
    onnxruntime."""

    def __init__(self, path: str | Path, threads: int = 1):
        import onnxruntime as ort

        self.path = Path(path)
        self.meta, contract, preprocess = read_props(self.path)
        self.features = list(self.meta["features"])
        self.classes = list(self.meta["classes"])
        self.task = str(self.meta.get("task") or ("binary" if len(self.classes) <= 2 else "multiclass"))
        self.contract = self.transform = None
        if contract is not None and preprocess is not None:
            from aiinfra.data.features import DataContract, FeatureTransform  # pandas: only for such models

            self.contract = DataContract.from_dict(contract)
            self.transform = FeatureTransform.from_dict(preprocess)
        opts = ort.SessionOptions()
        if threads > 0:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        # from bytes, not the path: the file may be a temporary export or part of a registry
        # download, which is deleted once the model is in memory
        self.session = ort.InferenceSession(
            self.path.read_bytes(), sess_options=opts, providers=["CPUExecutionProvider"]
        )

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {INPUT: np.ascontiguousarray(x, dtype=np.float32)})[0]

    def predict_values(self, x: np.ndarray) -> np.ndarray:
        """Regression: float64 values in the target's units (the graph predicts the standardized target)."""
        out = self.session.run(None, {INPUT: np.ascontiguousarray(x, dtype=np.float32)})[0][:, 0].astype(np.float64)
        return out * float(self.meta.get("target_std", 1.0)) + float(self.meta.get("target_mean", 0.0))

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.task == "regression":
            return self.predict_values(x)
        return np.asarray(self.classes)[self.predict_proba(x).argmax(1)]


def max_abs_difference(model_dir: str | Path, onnx_path: str | Path, rows: int = 256, seed: int = 0) -> float:
    """Largest absolute difference of class probabilities (regression: values), onnxruntime vs
    torch, on random encoded rows."""
    from aiinfra.models.model_dir import Predictor  # torch: only for this comparison

    torch_model = Predictor.load(model_dir)
    rng = np.random.default_rng(seed)
    mean = torch_model.module.scaler.mean.numpy()
    std = torch_model.module.scaler.std.numpy()
    x = (mean + std * rng.normal(size=(rows, mean.shape[0]))).astype(np.float32)
    onnx_model = OnnxPredictor(onnx_path)
    if onnx_model.task == "regression":
        return float(np.abs(onnx_model.predict_values(x) - torch_model.predict_values(x)).max())
    return float(np.abs(onnx_model.predict_proba(x) - torch_model.predict_proba(x)).max())


def ensure_onnx(model_dir: Path, onnx_path: str | Path | None) -> Path:
    """The ONNX file to serve: the configured one, or ``<model_dir>/model.onnx``, exported when it
    is missing or older than the weights."""
    if onnx_path:
        path = Path(onnx_path)
        if not path.is_file():
            raise AiinfraError(
                f"server.onnx_path {path} does not exist.",
                hint="export it with `aiinfra onnx-export MODEL_DIR --out FILE`, or set "
                "server.onnx_path=null to export the served model at start",
            )
        return path
    path = Path(model_dir) / "model.onnx"
    covered = signed_files(model_dir)
    if covered is not None:
        # a signed directory (aiinfra keys): its manifest covers every file, so an export written
        # into it would be refused at the next verification. The signed model.onnx (`aiinfra
        # onnx-export` then `aiinfra keys sign`), verified with the directory, is served as it is;
        # without one the export goes aside
        if "model.onnx" in covered:
            return path
        return export(model_dir, Path(tempfile.mkdtemp(prefix=EXPORTED_ASIDE)) / "model.onnx")
    weights = Path(model_dir) / "weights.pt"
    if not path.is_file() or (weights.is_file() and weights.stat().st_mtime > path.stat().st_mtime):
        try:
            export(model_dir, path)
        except PermissionError:  # a read-only model directory: export aside (deleted once loaded)
            path = export(model_dir, Path(tempfile.mkdtemp(prefix=EXPORTED_ASIDE)) / "model.onnx")
    return path


EXPORTED_ASIDE = "aiinfra-onnx-"


def _exported_aside(path: Path) -> bool:
    return path.parent.name.startswith(EXPORTED_ASIDE) and path.parent.parent == Path(tempfile.gettempdir())


def load(resolved: Any, server_cfg: Any) -> LoadedModel:
    """The ``onnx`` serving runtime (aiinfra.serving.runtime): the model directory's ONNX export on
    onnxruntime. ``server.onnx_path`` and ``server.ort_threads`` come from ``server=onnx``
    (:class:`OnnxServerConfig`); with another server (``server=http server.runtime=onnx``) their
    schema defaults apply."""
    options = server_cfg if isinstance(server_cfg, OnnxServerConfig) else OnnxServerConfig()
    path = ensure_onnx(Path(resolved.path), options.onnx_path)
    try:
        predictor = OnnxPredictor(path, threads=options.ort_threads)  # the session is in memory after this
    finally:
        if _exported_aside(path):
            shutil.rmtree(path.parent, ignore_errors=True)
    # a model on typed columns takes raw rows, checked and encoded as the torch runtime does
    return LoadedModel.from_resolved(resolved, predictor, platform="aiinfra_onnxruntime", inputs=raw_inputs(predictor))
