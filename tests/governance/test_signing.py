"""Model signing (aiinfra.governance.signing): a real model directory signed with a real Ed25519
key, then changed byte by byte, file by file, key by key; the server's loader, hot reload and
`aiinfra serve` / `aiinfra keys` as a user runs them."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from aiinfra.errors import AiinfraError, ConfigError
from aiinfra.governance import signing
from aiinfra.governance.schema import SigningConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))  # the serving helpers, by name
from serving_helpers import REPO, env_for, free_port, make_model  # noqa: E402


def _key():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()


def _raw_private(key) -> str:
    from cryptography.hazmat.primitives import serialization as ser

    return base64.b64encode(key.private_bytes(ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption())).decode()


def _pem_private(key) -> str:
    from cryptography.hazmat.primitives import serialization as ser

    return key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption()).decode()


def _public(key) -> str:
    return signing.b64(signing.public_raw(key.public_key()))


@pytest.fixture(scope="module")
def signer():
    return _key()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, signer) -> Path:
    """A model directory signed once for the module (tests copy it before changing anything)."""
    d = make_model(tmp_path_factory.mktemp("signed") / "model")
    signing.sign_with(d, signer)
    return d


@pytest.fixture
def signed(pristine, tmp_path) -> Path:
    import shutil

    return Path(shutil.copytree(pristine, tmp_path / "model"))


def cfg_for(signer, mode: str = "require", **kw) -> SigningConfig:
    return SigningConfig(mode=mode, trusted_keys=[_public(signer)], trusted_keys_env="AIINFRA_TEST_NO_SUCH_VAR", **kw)


def test_sign_and_verify_round_trip_lists_every_file(signed, signer, monkeypatch):
    monkeypatch.setenv("AIINFRA_SIGNING_KEY", _pem_private(signer))
    manifest = signing.sign_model_dir(signed, cfg_for(signer))  # PEM from the environment
    names = [f["path"] for f in manifest["files"]]
    assert "weights.pt" in names and "model.json" in names and signing.SIGNATURE_FILE not in names
    weights = next(f for f in manifest["files"] if f["path"] == "weights.pt")
    assert weights["size"] == (signed / "weights.pt").stat().st_size and len(weights["sha256"]) == 64
    assert manifest["signer"]["key_id"] == signing.key_id(signing.public_raw(signer.public_key()))
    verdict = signing.verify_model_dir(signed, cfg_for(signer))
    assert verdict.status == "ok" and verdict.files == len(names) and verdict.key_id == manifest["signer"]["key_id"]
    # no secret in what is written: the private key's bytes appear nowhere in the signature file
    text = (signed / signing.SIGNATURE_FILE).read_text()
    assert _raw_private(signer) not in text and "PRIVATE" not in text


def test_one_changed_byte_of_the_weights_is_refused_naming_the_file(signed, signer):
    weights = signed / "weights.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(signing.SignatureError) as info:
        signing.verify_model_dir(signed, cfg_for(signer), purpose="serve")
    message = str(info.value)
    assert message.startswith("refusing to serve") and "weights.pt changed after signing: sha256 " in message
    assert "!= manifest " in message and "hint:" in message
    assert info.value.verdict.status == "tampered" and info.value.exit_code == 2


def test_an_added_and_a_removed_file_are_each_named(signed, signer):
    (signed / "extra.py").write_text("import os\n")
    (signed / "contract.json").unlink(missing_ok=True)
    (signed / "model.json").rename(signed / "model.json.bak")
    verdict = signing.check_model_dir(signed, cfg_for(signer))
    assert verdict.status == "tampered"
    joined = "; ".join(verdict.problems)
    assert "extra.py was added after signing" in joined and "model.json was removed after signing" in joined
    assert "model.json.bak was added" in joined


def test_an_edited_manifest_fails_the_signature(signed, signer):
    path = signed / signing.SIGNATURE_FILE
    doc = json.loads(path.read_text())
    weights = signed / "weights.pt"
    weights.write_bytes(weights.read_bytes() + b"\0")  # tampered, and the manifest "fixed" to match
    entry = next(f for f in doc["manifest"]["files"] if f["path"] == "weights.pt")
    entry["sha256"], entry["size"] = signing.sha256_file(weights), weights.stat().st_size
    path.write_text(json.dumps(doc))
    verdict = signing.check_model_dir(signed, cfg_for(signer))
    assert verdict.status == "tampered" and "does not verify" in verdict.problems[0], verdict


def test_a_signer_not_in_the_trusted_keys_is_refused(signed, signer, monkeypatch):
    other = _key()
    with pytest.raises(signing.SignatureError) as info:
        signing.verify_model_dir(signed, cfg_for(other), purpose="register")
    assert info.value.verdict.status == "untrusted"
    assert f"its signer {signing.key_id(signing.public_raw(signer.public_key()))} is not one" in str(info.value)
    # trusted through the environment (';'-separated), the same directory verifies
    monkeypatch.setenv("AIINFRA_TRUSTED_KEYS", f"{_public(other)};{_public(signer)}")
    cfg = SigningConfig(mode="require", trusted_keys=[])
    assert signing.verify_model_dir(signed, cfg).status == "ok"
    # and through a PEM file, as `aiinfra keys generate` writes it
    from cryptography.hazmat.primitives import serialization as ser

    pem = signed.parent / "signer.pub"
    pem.write_bytes(signer.public_key().public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo))
    monkeypatch.delenv("AIINFRA_TRUSTED_KEYS")
    assert signing.verify_model_dir(signed, SigningConfig(mode="require", trusted_keys=[str(pem)])).status == "ok"


def test_no_trusted_keys_refuses_in_require_and_warns_in_warn(signed, signer, caplog):
    bare = SigningConfig(mode="require", trusted_keys=[], trusted_keys_env="AIINFRA_TEST_NO_SUCH_VAR")
    with pytest.raises(signing.SignatureError, match="no trusted keys are configured"):
        signing.verify_model_dir(signed, bare)
    with caplog.at_level(logging.WARNING, logger="aiinfra.governance.signing"):
        verdict = signing.verify_model_dir(signed, replace(bare, mode="warn"))
    assert verdict.status == "untrusted" and "not trusted" in caplog.text and "serving it anyway" in caplog.text


def test_warn_mode_loads_a_tampered_model_with_one_warning_and_off_checks_nothing(signed, signer, caplog):
    from omegaconf import OmegaConf

    from aiinfra.config.validate import validate
    from aiinfra.plugins.manager import get_plugins
    from aiinfra.serving.runtime import ModelLoader

    (signed / "weights.pt").write_bytes((signed / "weights.pt").read_bytes() + b"\0\0")  # torch still reads it
    for mode, status in (("warn", "tampered"), ("off", "off")):
        caplog.clear()
        raw = {"server": {"type": "http", "model_uri": str(signed)}, "signing": {"mode": mode}}
        loader = ModelLoader(validate(OmegaConf.create(raw), get_plugins().registry))
        with caplog.at_level(logging.WARNING, logger="aiinfra.governance.signing"):
            model = loader()
        assert model.n_features == 4 and loader.verdict.status == status
        warnings = [r for r in caplog.records if r.name == "aiinfra.governance.signing"]
        assert len(warnings) == (1 if mode == "warn" else 0), caplog.text
        if warnings:
            assert "weights.pt changed after signing" in warnings[0].getMessage()


def test_no_key_in_the_environment(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("AIINFRA_SIGNING_KEY", raising=False)
    d = make_model(tmp_path / "model")
    (d / signing.SIGNATURE_FILE).write_text("{}")  # a stale signature of an earlier training
    monkeypatch.setattr(signing, "_warned_unsigned", False)
    with caplog.at_level(logging.WARNING, logger="aiinfra.governance.signing"):
        assert signing.sign_model_dir(d, SigningConfig(mode="warn")) is None
        assert signing.sign_model_dir(d, SigningConfig(mode="warn")) is None
    assert caplog.text.count("model not signed: set AIINFRA_SIGNING_KEY (aiinfra keys generate)") == 1
    assert not (d / signing.SIGNATURE_FILE).exists()  # the stale one is gone, nothing new written
    with pytest.raises(AiinfraError, match="AIINFRA_SIGNING_KEY is not set") as info:
        signing.sign_model_dir(d, SigningConfig(mode="require"))
    assert "aiinfra keys generate" in info.value.hint
    with pytest.raises(AiinfraError, match="AIINFRA_SIGNING_KEY is not set"):
        signing.require_signing_key(SigningConfig(mode="require"))
    # unsigned: refused in require, with the way to sign it
    with pytest.raises(signing.SignatureError, match="it is not signed") as info:
        signing.verify_model_dir(d, SigningConfig(mode="require", trusted_keys=[]))
    assert "aiinfra keys" in info.value.hint
    # a malformed key: one error naming the variable, never its content
    monkeypatch.setenv("AIINFRA_SIGNING_KEY", "c2VjcmV0LXNlY3JldA==")
    with pytest.raises(AiinfraError) as info:
        signing.sign_model_dir(d, SigningConfig(mode="warn"))
    assert "$AIINFRA_SIGNING_KEY is not an Ed25519 private key" in str(info.value)
    assert "c2VjcmV0" not in str(info.value)


def test_a_malformed_trusted_key_is_a_config_error_naming_the_entry():
    from omegaconf import OmegaConf

    from aiinfra.config.validate import validate
    from aiinfra.plugins.manager import get_plugins

    with pytest.raises(ConfigError, match=r"signing\.trusted_keys\[0\]"):
        validate(OmegaConf.create({"signing": {"trusted_keys": ["not-a-key"]}}), get_plugins().registry)


def test_a_private_key_listed_as_trusted_is_refused_without_echoing_it(monkeypatch, tmp_path):
    """The easy mistake: the private key file where the public one belongs. The error names the
    entry's place and says PRIVATE; no byte of the key reaches the message (or the ledger)."""
    pem = _pem_private(_key())
    body = "".join(pem.strip().splitlines()[1:-1])
    monkeypatch.setenv("AIINFRA_TRUSTED_KEYS", pem)
    with pytest.raises(AiinfraError) as info:
        signing.trusted_keys(SigningConfig(mode="require"))
    text = str(info.value)
    assert "$AIINFRA_TRUSTED_KEYS entry 1" in text and "PRIVATE" in text
    assert body[:24] not in text and body[-24:] not in text
    monkeypatch.delenv("AIINFRA_TRUSTED_KEYS")
    path = tmp_path / "signing.pem"
    path.write_text(pem)
    with pytest.raises(AiinfraError) as info:
        signing.trusted_keys(SigningConfig(mode="require", trusted_keys=[str(path)]))
    text = str(info.value)
    assert "signing.trusted_keys[0]" in text and "PRIVATE" in text and body[:24] not in text


def test_hot_reload_keeps_the_old_version_when_the_new_one_is_tampered(signed, signer):
    """A local directory the server follows: a changed weights file is refused, the old model
    keeps answering, and the reload's error names the file."""
    from omegaconf import OmegaConf

    from aiinfra.config.validate import validate
    from aiinfra.plugins.manager import get_plugins
    from aiinfra.serving.reload import ModelHolder
    from aiinfra.serving.runtime import ModelLoader

    raw = {
        "server": {"type": "http", "model_uri": str(signed)},
        "signing": {"mode": "require", "trusted_keys": [_public(signer)]},
    }
    loader = ModelLoader(validate(OmegaConf.create(raw), get_plugins().registry))
    first = loader()
    holder = ModelHolder(loader, first)
    make_model(signed.parent / "other", seed=7)
    (signed / "weights.pt").write_bytes((signed.parent / "other" / "weights.pt").read_bytes())
    result = asyncio.run(holder.check())
    assert result["reloaded"] is False and "weights.pt changed after signing" in result["error"], result
    assert holder.current is first
    signing.sign_with(signed, signer)  # re-signed by the trusted key: now it loads
    assert asyncio.run(holder.check())["reloaded"] is True and holder.current is not first


def _cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aiinfra", *args],
        cwd=cwd,
        env=env_for(cwd, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def cli_project(tmp_path) -> Path:
    import shutil

    root = tmp_path / "proj"
    shutil.copytree(REPO / "conf", root / "conf")
    return root


def test_keys_generate_show_sign_verify_and_serve_refuses_a_tampered_model(cli_project, tmp_path):
    """The commands as a user runs them: a key pair, a signed directory that verifies, then one
    changed byte: `aiinfra keys verify` exits 1 and `aiinfra serve` exits 2 naming the file."""
    gen = _cli("keys", "generate", "--out", str(tmp_path / "keys"), cwd=cli_project)
    assert gen.returncode == 0, gen.stderr
    private = tmp_path / "keys" / "signing.key"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    pem = private.read_text()
    assert pem.startswith("-----BEGIN PRIVATE KEY-----") and pem not in gen.stdout and "PRIVATE KEY" not in gen.stdout
    public = gen.stdout.split("public key: ")[1].split()[0]
    trust = f'signing.trusted_keys=["{public}"]'  # quoted: base64 has / + = (Hydra's override grammar)
    assert f"'{trust}'" in gen.stdout and "export AIINFRA_SIGNING_KEY=" in gen.stdout
    again = _cli("keys", "generate", "--out", str(tmp_path / "keys"), cwd=cli_project)
    assert again.returncode == 2 and "exists" in again.stderr  # never replaces a key silently

    show = _cli("keys", "show", cwd=cli_project, AIINFRA_SIGNING_KEY=pem)
    assert show.returncode == 0 and f"public key: {public}" in show.stdout and pem not in show.stdout

    model = make_model(tmp_path / "model")
    sign = _cli("keys", "sign", str(model), cwd=cli_project, AIINFRA_SIGNING_KEY=pem)
    assert sign.returncode == 0 and "signed" in sign.stdout, sign.stderr
    ok = _cli("keys", "verify", str(model), trust, cwd=cli_project)
    assert ok.returncode == 0 and ": ok: " in ok.stdout, ok.stderr
    untrusted = _cli("keys", "verify", str(model), cwd=cli_project)  # the project trusts no key
    assert untrusted.returncode == 1 and "untrusted" in untrusted.stderr

    weights = model / "weights.pt"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    bad = _cli("keys", "verify", str(model), trust, cwd=cli_project)
    assert bad.returncode == 1 and "weights.pt changed after signing" in bad.stderr

    serve = _cli(
        "serve",
        f"server.model_uri={model}",
        f"server.port={free_port()}",
        "signing.mode=require",
        trust,
        cwd=cli_project,
    )
    assert serve.returncode == 2, serve.stdout + serve.stderr
    assert "aiinfra: error: refusing to serve" in serve.stderr and "weights.pt changed after signing" in serve.stderr
    assert "Traceback" not in serve.stderr and pem not in serve.stderr + serve.stdout
    assert os.environ.get("AIINFRA_SIGNING_KEY") != pem  # the key went to the children only
