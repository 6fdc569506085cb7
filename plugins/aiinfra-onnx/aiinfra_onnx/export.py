"""Export an aiinfra model directory (weights.pt + model.json) to a self-contained ONNX file.

The graph is the whole inference model, standardisation included, with a softmax on top: input
``input`` float32 [N, n_features], output ``probabilities`` float32 [N, n_classes]. The feature
names, classes and model.json travel in the ONNX metadata, so the file alone can be served.
"""

from __future__ import annotations

import json
import logging
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
    # torch only here: a server whose model.onnx is up to date never imports it
    import onnx
    import torch

    from aiinfra.models.model_dir import Predictor

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
            torch.onnx.export(
                graph,
                (example,),
                str(tmp),
                input_names=[INPUT],
                output_names=[OUTPUT],
                dynamic_axes={INPUT: {0: "rows"}, OUTPUT: {0: "rows"}},
                opset_version=opset,
                dynamo=False,
            )
        except (TypeError, RuntimeError, NotImplementedError) as exc:
            log.info("TorchScript ONNX exporter unavailable (%s); using torch.export", exc)
            torch.onnx.export(
                graph,
                (example,),
                str(tmp),
                input_names=[INPUT],
                output_names=[OUTPUT],
                dynamic_shapes=({0: torch.export.Dim("rows")},),
                opset_version=opset,
                dynamo=True,
            )
    proto = onnx.load(str(tmp))
    meta = dict(predictor.meta)
    for key, value in {
        META_KEY: json.dumps(meta, sort_keys=True),
        "aiinfra.features": json.dumps(predictor.features),
        "aiinfra.classes": json.dumps(predictor.classes),
    }.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out))
    tmp.unlink(missing_ok=True)
    log.info(
        "exported %s to %s (%d features, %d classes)", model_dir, out, len(predictor.features), len(predictor.classes)
    )
    return out


def read_meta(path: str | Path) -> dict[str, Any]:
    """model.json as embedded in an exported ONNX file."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    if META_KEY not in props:
        raise AiinfraError(
            f"{path} was not exported by aiinfra-onnx (no {META_KEY} metadata).",
            hint="export it with `aiinfra onnx-export MODEL_DIR --out FILE`",
        )
    return json.loads(props[META_KEY])
