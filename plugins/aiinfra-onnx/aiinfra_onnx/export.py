"""Export an aiinfra model directory (weights.pt + model.json) to a self-contained ONNX file.

The graph is the whole inference model, standardisation included, with a softmax on top: input
``input`` float32 [N, n_features], output ``probabilities`` float32 [N, n_classes]. The feature
names, classes and model.json travel in the ONNX metadata, so the file alone can be served.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

from aiinfra.errors import AiinfraError

log = logging.getLogger("aiinfra.onnx")

INPUT, OUTPUT = "input", "probabilities"
META_KEY = "aiinfra.model_json"
DEFAULT_OPSET = 17


def export(model_dir: str | Path, out: str | Path | None = None, *, opset: int = DEFAULT_OPSET) -> Path:
    """Write ``out`` (default ``<model_dir>/model.onnx``) and return its path."""
    import onnx
    import torch

    from aiinfra.models.artifact import Predictor

    model_dir = Path(model_dir)
    predictor = Predictor.load(model_dir)  # AiinfraError naming the directory when it is not one
    out = Path(out) if out else model_dir / "model.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    graph = torch.nn.Sequential(predictor.module, torch.nn.Softmax(dim=1)).eval()
    example = torch.zeros(2, len(predictor.features), dtype=torch.float32)
    tmp = out.with_suffix(".onnx.tmp")
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated but exact and fast for these feed-forward graphs;
        # the torch.export-based one is the fallback where it has been removed
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            torch.onnx.export(graph, (example,), str(tmp), input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_axes={INPUT: {0: "rows"}, OUTPUT: {0: "rows"}}, opset_version=opset,
                              dynamo=False)
        except (TypeError, RuntimeError, NotImplementedError) as exc:
            log.info("TorchScript ONNX exporter unavailable (%s); using torch.export", exc)
            torch.onnx.export(graph, (example,), str(tmp), input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_shapes=({0: torch.export.Dim("rows")},), opset_version=opset,
                              dynamo=True)
    proto = onnx.load(str(tmp))
    meta = dict(predictor.meta)
    for key, value in {META_KEY: json.dumps(meta, sort_keys=True),
                       "aiinfra.features": json.dumps(predictor.features),
                                      "aiinfra.classes": json.dumps(predictor.classes)}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out))
    tmp.unlink(missing_ok=True)
    log.info("exported %s to %s (%d features, %d classes)", model_dir, out, len(predictor.features),
             len(predictor.classes))
    return out


def read_meta(path: str | Path) -> dict[str, Any]:
    """model.json as embedded in an exported ONNX file."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    if META_KEY not in props:
        raise AiinfraError(f"{path} was not exported by aiinfra-onnx (no {META_KEY} metadata).",
                           hint="export it with `aiinfra onnx-export MODEL_DIR --out FILE`")
    return json.loads(props[META_KEY])


def main(argv: list[str]) -> int:
    """``aiinfra onnx-export MODEL_DIR [--out FILE] [--opset N] [--check]``."""
    parser = argparse.ArgumentParser(prog="aiinfra onnx-export", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="an aiinfra model directory (models/model)")
    parser.add_argument("--out", help="the .onnx file to write (default: <model>/model.onnx)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--check", action="store_true",
                        help="also compare onnxruntime's probabilities with torch's on random rows")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = export(args.model, args.out, opset=args.opset)
    print(out)
    if args.check:
        from aiinfra_onnx.runtime import max_abs_difference

        diff = max_abs_difference(args.model, out)
        print(f"max |onnxruntime - torch| probability difference on 256 random rows: {diff:.3g}")
        if diff > 1e-4:
            print("aiinfra onnx-export: the ONNX model disagrees with torch", file=sys.stderr)
            return 1
    return 0
