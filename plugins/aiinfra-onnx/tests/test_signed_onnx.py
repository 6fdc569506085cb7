"""The onnx runtime on a signed model directory (aiinfra.governance.signing): it never writes an
unsigned model.onnx into it (the next verification would refuse the added file), and serves a
model.onnx that the manifest covers as it is."""

from __future__ import annotations

import base64
import shutil

import numpy as np
from omegaconf import OmegaConf

from aiinfra.config.validate import validate
from aiinfra.governance import signing
from aiinfra.models.model_dir import Predictor
from aiinfra.plugins.manager import get_plugins
from aiinfra.serving.runtime import ModelLoader


def _key():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()


def _loader(local, key):
    public = base64.b64encode(signing.public_raw(key.public_key())).decode()
    raw = {
        "server": {"type": "onnx", "model_uri": str(local)},
        "signing": {"mode": "require", "trusted_keys": [public]},
    }
    return ModelLoader(validate(OmegaConf.create(raw), get_plugins().registry))


def test_a_signed_directory_is_exported_aside_and_verifies_on_every_load(model_dir, rows, tmp_path):
    key = _key()
    local = shutil.copytree(model_dir, tmp_path / "model")
    (local / "model.onnx").unlink(missing_ok=True)
    signing.sign_with(local, key)
    loader = _loader(local, key)
    for _ in range(2):  # a restart (or a reload) verifies the same directory again
        served = loader()
        assert loader.verdict.status == "ok" and not (local / "model.onnx").exists()
    np.testing.assert_allclose(
        served.predict_proba(rows[:5]), Predictor.load(model_dir).predict_proba(rows[:5]), rtol=0, atol=1e-5
    )


def test_a_signed_model_onnx_is_served_as_signed(model_dir, rows, tmp_path):
    from aiinfra_onnx.export import export

    key = _key()
    local = shutil.copytree(model_dir, tmp_path / "model")
    export(local)  # `aiinfra onnx-export models/model`, then `aiinfra keys sign models/model`
    signing.sign_with(local, key)
    before = (local / "model.onnx").read_bytes()
    served = _loader(local, key)()
    assert served.platform == "aiinfra_onnxruntime" and (local / "model.onnx").read_bytes() == before
    assert signing.check_model_dir(local, _loader(local, key).cfg.signing).status == "ok"
