"""The built-in serving runtime ``torch``: an aiinfra model directory (weights.pt + model.json, and
for a model trained on typed columns contract.json + preprocess.json) loaded with
:class:`aiinfra.models.model_dir.Predictor`."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from aiinfra.models.model_dir import Predictor
from aiinfra.serving.runtime import LoadedModel, raw_inputs


def configure_threads(threads: int) -> None:
    """``server.torch_threads`` intra-op threads for this process (0: torch's default)."""
    if threads > 0:
        torch.set_num_threads(threads)
        # RuntimeError: already set in this process (a reload, or a second server in one process)
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(1)


def load(resolved: Any, server_cfg: Any) -> LoadedModel:
    configure_threads(server_cfg.torch_threads)
    predictor = Predictor.load(resolved.path)  # weights and metadata are in memory after this
    return LoadedModel.from_resolved(resolved, predictor, platform="aiinfra_pytorch", inputs=raw_inputs(predictor))
