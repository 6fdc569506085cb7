"""An onnxruntime predictor with the interface the built-in server expects from a model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from aiinfra_onnx.export import INPUT, read_meta


class OnnxPredictor:
    """``features``, ``classes``, ``meta`` and ``predict_proba(float32 rows)``, on onnxruntime."""

    def __init__(self, path: str | Path, threads: int = 1):
        import onnxruntime as ort

        self.path = Path(path)
        self.meta = read_meta(self.path)
        self.features = list(self.meta["features"])
        self.classes = list(self.meta["classes"])
        opts = ort.SessionOptions()
        if threads > 0:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        # from bytes, not the path: the file may be a temporary export or part of a registry
        # download, which is deleted once the model is in memory
        self.session = ort.InferenceSession(self.path.read_bytes(), sess_options=opts,
                                            providers=["CPUExecutionProvider"])

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {INPUT: np.ascontiguousarray(x, dtype=np.float32)})[0]

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes)[self.predict_proba(x).argmax(1)]


def max_abs_difference(model_dir: str | Path, onnx_path: str | Path, rows: int = 256, seed: int = 0) -> float:
    """Largest absolute difference of class probabilities, onnxruntime vs torch, on random rows."""
    from aiinfra.models.artifact import Predictor

    torch_model = Predictor.load(model_dir)
    rng = np.random.default_rng(seed)
    mean = torch_model.module.scaler.mean.numpy()
    std = torch_model.module.scaler.std.numpy()
    x = (mean + std * rng.normal(size=(rows, len(torch_model.features)))).astype(np.float32)
    return float(np.abs(OnnxPredictor(onnx_path).predict_proba(x) - torch_model.predict_proba(x)).max())


def ensure_onnx(model_dir: Path, onnx_path: str | Path | None) -> Path:
    """The ONNX file to serve: the configured one, or ``<model_dir>/model.onnx``, exported when it
    is missing or older than the weights."""
    from aiinfra_onnx.export import export

    if onnx_path:
        path = Path(onnx_path)
        if not path.is_file():
            from aiinfra.errors import AiinfraError

            raise AiinfraError(f"server.onnx_path {path} does not exist.",
                               hint="export it with `aiinfra onnx-export MODEL_DIR --out FILE`, or set "
                               "server.onnx_path=null to export the served model at start")
        return path
    path = Path(model_dir) / "model.onnx"
    weights = Path(model_dir) / "weights.pt"
    if not path.is_file() or (weights.is_file() and weights.stat().st_mtime > path.stat().st_mtime):
        try:
            export(model_dir, path)
        except PermissionError:  # a read-only model directory: export aside (deleted once loaded)
            import tempfile

            path = export(model_dir, Path(tempfile.mkdtemp(prefix=EXPORTED_ASIDE)) / "model.onnx")
    return path


EXPORTED_ASIDE = "aiinfra-onnx-"


def _exported_aside(path: Path) -> bool:
    import tempfile

    return path.parent.name.startswith(EXPORTED_ASIDE) and path.parent.parent == Path(tempfile.gettempdir())


def as_served_model(resolved: Any, onnx_path: str | Path | None, threads: int) -> Any:
    """A ``ServedModel`` of the built-in server, its predictor running on onnxruntime."""
    import shutil
    import time

    from aiinfra.serving.model_state import ServedModel
    from aiinfra.tracking.mlflow_setup import remove_download

    path = None
    try:
        path = ensure_onnx(Path(resolved.path), onnx_path)
        predictor = OnnxPredictor(path, threads=threads)
    finally:
        # a registry download is a temporary copy: without this, every start and every reload
        # left one directory behind (the built-in loader does the same)
        remove_download(resolved)
        if path is not None and _exported_aside(path):
            shutil.rmtree(path.parent, ignore_errors=True)
    model = ServedModel(predictor=predictor, name=str(resolved.name), version=str(resolved.version),
                        uri=str(resolved.uri), path=Path(resolved.path), run_id=resolved.run_id,
                        features=predictor.features, classes=np.asarray(predictor.classes),
                        loaded_at=time.time())
    model.predict_proba(np.zeros((1, model.n_features), dtype=np.float32))  # warm-up
    return model
