"""aiinfra-onnx: export an aiinfra model directory to ONNX and serve it with onnxruntime."""

__version__ = "0.1.0"
