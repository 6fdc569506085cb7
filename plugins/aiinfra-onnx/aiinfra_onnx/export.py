"""Export an aiinfra model directory (weights.pt + model.json) to a self-contained ONNX file.

The graph is the whole inference model, standardisation included, with a softmax on top: input
``input`` float32 [N, n_inputs], output ``probabilities`` float32 [N, n_classes]; a regression
model has no softmax and one output ``predictions`` float32 [N, 1] (the standardized target:
model.json's ``target_mean``/``target_std`` turn it into the target's units). ``n_inputs`` is the
encoded width: a model trained on typed columns takes its preprocessing's output columns. The
feature names, classes, model.json, and the data contract and fitted preprocessing (when the model
has them) travel in the ONNX metadata, so the file alone can be served.
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
REGRESSION_OUTPUT = "predictions"
META_KEY = "aiinfra.model_json"
CONTRACT_KEY, PREPROCESS_KEY = "aiinfra.contract_json", "aiinfra.preprocess_json"
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
    regression = predictor.meta.get("task") == "regression"
    output = REGRESSION_OUTPUT if regression else OUTPUT
    # the network's input width: the encoded columns (a model on typed columns), else the features
    width = int(predictor.module.scaler.mean.shape[0])
    graph = (predictor.module if regression else torch.nn.Sequential(predictor.module, torch.nn.Softmax(dim=1))).eval()
    example = torch.zeros(2, width, dtype=torch.float32)
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
                output_names=[output],
                dynamic_axes={INPUT: {0: "rows"}, output: {0: "rows"}},
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
                output_names=[output],
                dynamic_shapes=({0: torch.export.Dim("rows")},),
                opset_version=opset,
                dynamo=True,
            )
    proto = onnx.load(str(tmp))
    meta = dict(predictor.meta)
    props = {
        META_KEY: json.dumps(meta, sort_keys=True),
        "aiinfra.features": json.dumps(predictor.features),
        "aiinfra.classes": json.dumps(predictor.classes),
    }
    contract, transform = getattr(predictor, "contract", None), getattr(predictor, "transform", None)
    if contract is not None:
        props[CONTRACT_KEY] = json.dumps(contract.to_dict())
    if transform is not None:
        props[PREPROCESS_KEY] = json.dumps(transform.to_dict())
    for key, value in props.items():
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
    return read_props(path)[0]


def read_props(path: str | Path) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]:
    """(model.json, contract.json or None, preprocess.json or None) as embedded in an exported file."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    if META_KEY not in props:
        raise AiinfraError(
            f"{path} was not exported by aiinfra-onnx (no {META_KEY} metadata).",
            hint="export it with `aiinfra onnx-export MODEL_DIR --out FILE`",
        )
    extra = [json.loads(props[k]) if k in props else None for k in (CONTRACT_KEY, PREPROCESS_KEY)]
    return json.loads(props[META_KEY]), extra[0], extra[1]
