"""``aiinfra onnx-export``: the plugin's command."""

from __future__ import annotations

import argparse
import logging
import sys

from aiinfra_onnx.export import DEFAULT_OPSET, export
from aiinfra_onnx.runtime import max_abs_difference


def main(argv: list[str]) -> int:
    """``aiinfra onnx-export MODEL_DIR [--out FILE] [--opset N] [--check]``."""
    parser = argparse.ArgumentParser(
        prog="aiinfra onnx-export", description="export an aiinfra model directory to a self-contained ONNX file"
    )
    parser.add_argument("model", help="an aiinfra model directory (models/model)")
    parser.add_argument("--out", help="the .onnx file to write (default: <model>/model.onnx)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument(
        "--check", action="store_true", help="also compare onnxruntime's probabilities with torch's on random rows"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = export(args.model, args.out, opset=args.opset)
    print(out)
    if args.check:
        diff = max_abs_difference(args.model, out)
        print(f"max |onnxruntime - torch| probability difference on 256 random rows: {diff:.3g}")
        if diff > 1e-4:
            print("aiinfra onnx-export: the ONNX model disagrees with torch", file=sys.stderr)
            return 1
    return 0
