"""A model directory on S3 (``server.model_uri=s3://...``): downloaded under the project's
``.aiinfra/model-cache``, its signature checked on that local copy (a file changed in the bucket
is refused), and the copy deleted after loading."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aiinfra.governance.schema import SigningConfig, SigningMode
from aiinfra.governance.signing import SignatureError, public_raw, sign_with, verify_model_dir
from aiinfra.storage import urls
from aiinfra.tracking.mlflow_setup import MODEL_CACHE, remove_download, resolve_model
from s3_helpers import s3_env  # noqa: F401 - a fixture


@pytest.fixture
def signed_dir(tmp_path):
    """A small signed model directory (the files resolve_model and signing look at) and its key."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.json").write_text('{"features": ["a"], "classes": [0, 1]}')
    (model / "weights.pt").write_bytes(b"\x00" * 2048)
    key = Ed25519PrivateKey.generate()
    sign_with(model, key)
    return model, base64.b64encode(public_raw(key.public_key())).decode()


@pytest.mark.usefixtures("s3_env")
def test_an_s3_model_dir_is_downloaded_verified_and_removed(s3_server, signed_dir, tmp_path, monkeypatch):
    model, trusted = signed_dir
    url = s3_server.bucket("model-dir") + "/models/model"
    urls.upload_dir(model, url)
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    cfg = SimpleNamespace()
    signing = SigningConfig(mode=SigningMode.require, trusted_keys=[trusted])

    resolved = resolve_model(url, cfg)
    assert resolved.path.is_relative_to(project / MODEL_CACHE)
    assert (resolved.path / "weights.pt").read_bytes() == (model / "weights.pt").read_bytes()
    assert resolved.name == "model" and resolved.uri == url
    verdict = verify_model_dir(resolved.path, signing, what=url)  # the local copy: intact and trusted
    assert verdict is not None
    remove_download(resolved)
    assert not resolved.path.exists()

    # a file changed in the bucket after signing: the downloaded copy fails the check
    urls.write_bytes(url + "/weights.pt", b"\x01" * 2048)
    tampered = resolve_model(url, cfg)
    try:
        with pytest.raises(SignatureError) as info:
            verify_model_dir(tampered.path, signing, what=url)
        assert "weights.pt" in str(info.value)
    finally:
        remove_download(tampered)
