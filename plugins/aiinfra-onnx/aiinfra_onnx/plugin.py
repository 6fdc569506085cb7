"""Entry point of aiinfra-onnx. Import-light: no torch, onnx or onnxruntime here."""

from aiinfra.plugins import hookimpl

AIINFRA_API = ">=1.0,<2"


@hookimpl
def aiinfra_register_components(register):
    register("server", "onnx", target="aiinfra_onnx.server:serve",
             schema="aiinfra_onnx.schema:OnnxServerConfig",
             description="HTTP server on onnxruntime: same protocol as `http` (KServe V2, /invocations)")


@hookimpl
def aiinfra_register_commands(register):
    register("onnx-export", target="aiinfra_onnx.export:main",
             help="export a model directory to ONNX: onnx-export MODEL_DIR [--out FILE] [--check]")


@hookimpl
def aiinfra_config_searchpath():
    return "pkg://aiinfra_onnx.conf"
