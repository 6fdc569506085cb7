"""Entry point of aiinfra-onnx. Import-light: no torch, onnx or onnxruntime here."""

from aiinfra.plugins import hookimpl

AIINFRA_API = ">=1.0,<2"


@hookimpl
def aiinfra_register_components(register):
    register(
        "runtime",
        "onnx",
        target="aiinfra_onnx.runtime:load",
        description="an aiinfra model directory exported to ONNX, on onnxruntime (server.runtime=onnx)",
    )
    # server=onnx is the built-in HTTP server with runtime onnx and this plugin's options
    register(
        "server",
        "onnx",
        target="aiinfra.serving.server:serve",
        schema="aiinfra_onnx.schema:OnnxServerConfig",
        description="HTTP server on onnxruntime: same protocol as `http` (KServe V2, /invocations)",
    )


@hookimpl
def aiinfra_register_commands(register):
    register(
        "onnx-export",
        target="aiinfra_onnx.cli:main",
        help="export a model directory to ONNX: onnx-export MODEL_DIR [--out FILE] [--check]",
    )


@hookimpl
def aiinfra_config_searchpath():
    return "pkg://aiinfra_onnx.conf"
