"""The serving runtime contract: loading through ModelLoader, what a runtime must return, and the
input seam (a runtime's own decoder and batch type pass through the dynamic batcher)."""

from __future__ import annotations

import asyncio
import shutil

import numpy as np
import pytest
from omegaconf import OmegaConf

from aiinfra.config.validate import validate
from aiinfra.errors import PluginError
from aiinfra.models.model_dir import Predictor
from aiinfra.plugins.manager import get_plugins
from aiinfra.plugins.registry import ComponentRegistry, ComponentSpec
from aiinfra.serving.batcher import Batcher
from aiinfra.serving.runtime import LoadedModel, ModelLoader, ServedModel
from aiinfra.tracking.mlflow_setup import ResolvedModel


def typed(**server):
    return validate(OmegaConf.create({"server": {"type": "http", **server}}), get_plugins().registry)


def not_a_model(resolved, server_cfg):
    """A broken runtime: returns the predictor itself."""
    return Predictor.load(resolved.path)


def test_torch_runtime_loads_warms_up_and_deletes_the_download(model_dir, tmp_path):
    loader = ModelLoader(typed(model_uri=str(model_dir)))
    download = tmp_path / "aiinfra-model-1"
    copy = shutil.copytree(model_dir, download / "model")
    model = loader.load(ResolvedModel("models:/m/4", copy, "m", "4", run_id="r1", download_dir=download))
    assert isinstance(model, ServedModel) and not download.exists()
    assert (model.name, model.version, model.run_id, model.platform) == ("m", "4", "r1", "aiinfra_pytorch")
    assert model.features == ["a", "b", "c", "d"] and model.classes.tolist() == [0, 1]
    assert model.target == "target" and model.label_datatype == "INT64"
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(model.predict_proba(x), Predictor.load(model_dir).predict_proba(x), rtol=1e-6)
    # the default decoder: a V2 body becomes the float32 matrix of the features, in order
    req = model.inputs.from_v2(
        b'{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]}', None, max_rows=10
    )
    assert req.x.dtype == np.float32 and req.x.tolist() == [[1, 2, 3, 4]]


def test_a_runtime_that_returns_no_served_model_is_a_clear_error(model_dir):
    registry = ComponentRegistry()
    registry.add(ComponentSpec("runtime", "torch", "test_runtime:not_a_model", provider="tests 0"))
    loader = ModelLoader(typed(model_uri=str(model_dir)), registry)
    with pytest.raises(
        PluginError,
        match=r"runtime 'torch' returned a Predictor, which is not a ServedModel "
        r"\(missing: name, version, uri, path, run_id, target",
    ):
        loader()


class RawRows:
    """A decoder for a runtime that preprocesses itself: its batches are lists of dicts."""

    def from_v2(self, body, binary_header_length, max_rows):
        raise NotImplementedError

    def from_invocations(self, body, content_type, max_rows):
        raise NotImplementedError

    def concat(self, batches):
        return [row for batch in batches for row in batch]


class CountingPredictor:
    features, classes = ["city"], [0, 1]

    def __init__(self):
        self.calls: list[int] = []

    def predict_proba(self, rows):
        self.calls.append(len(rows))
        p = np.array([[0.0, 1.0] if r["city"] else [1.0, 0.0] for r in rows], dtype=np.float32)
        return p


def test_a_runtime_with_its_own_batch_type_is_batched(tmp_path):
    predictor = CountingPredictor()
    model = LoadedModel(
        predictor=predictor,
        name="m",
        version="1",
        uri="u",
        path=tmp_path,
        features=["city"],
        classes=np.array([0, 1]),
        inputs=RawRows(),
    )
    assert isinstance(model, ServedModel)
    batches: list[int] = []

    async def two_requests():
        batcher = Batcher(
            lambda: model,
            max_batch_size=16,
            max_wait_ms=0,
            max_queue_rows=16,
            on_batch=lambda rows, seconds: batches.append(rows),
        )
        results = await asyncio.gather(
            batcher.predict([{"city": "Lyon"}, {"city": None}], model), batcher.predict([{"city": "Oslo"}], model)
        )
        await batcher.close()
        return results

    first, second = asyncio.run(two_requests())
    assert predictor.calls == [3] and batches == [3]  # one forward pass for both requests
    assert first.index.tolist() == [1, 0] and second.index.tolist() == [1]
