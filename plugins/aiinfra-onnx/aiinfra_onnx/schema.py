"""Config schema of the ``onnx`` server: the built-in HTTP server's keys plus onnxruntime's."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiinfra.config.checks import at_least
from aiinfra.serving.schema import HttpServerConfig


@dataclass
class OnnxServerConfig(HttpServerConfig):
    type: str = "onnx"
    runtime: str = field(default="onnx", metadata={"registered": "runtime"})  # aiinfra_onnx.runtime:load
    # the .onnx file; null: <model directory>/model.onnx, exported from the torch weights at start
    # when it is missing (or older than weights.pt). Hot reload re-exports a new version the same way.
    onnx_path: str | None = None
    # onnxruntime intra-op threads per process (1: measured fastest for small models; README); 0: its default
    ort_threads: int = 1

    def check(self) -> None:
        super().check()
        at_least(self, 0, "ort_threads")
