"""Config schema of the ``onnx`` server: the built-in HTTP server's keys plus onnxruntime's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from aiinfra.serving.schema import HttpServerConfig


@dataclass
class OnnxServerConfig(HttpServerConfig):
    type: str = "onnx"
    # the .onnx file; null: <model directory>/model.onnx, exported from the torch weights at start
    # when it is missing (or older than weights.pt)
    onnx_path: Optional[str] = None
    # onnxruntime intra-op threads per process (1: measured fastest for small models; README)
    ort_threads: int = 1
    # the ONNX model is immutable: reloading follows the URI like the built-in server, re-exporting
    reload_interval_s: float = 30.0
