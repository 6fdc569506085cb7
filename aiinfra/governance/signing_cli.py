"""``aiinfra keys``: the model-signing keys and checks (aiinfra.governance.signing).

* ``aiinfra keys generate [--out DIR] [--force] [--print-private]``: a new Ed25519 key pair:
  ``DIR/signing.key`` (private, PEM PKCS8, mode 0600) and ``DIR/signing.pub`` (public, PEM); prints
  the public key and the lines that use them (the private key only with ``--print-private``).
* ``aiinfra keys show``: the public key and key id of the key in ``$AIINFRA_SIGNING_KEY``.
* ``aiinfra keys sign MODEL_DIR``: sign a directory (e.g. after ``aiinfra onnx-export`` wrote
  model.onnx into it) with the key in the environment.
* ``aiinfra keys verify MODEL [OVERRIDES]``: verify a model directory (or ``models:/...`` URI)
  with the project's ``signing`` config; exit 0 when it verifies, 1 when not.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from aiinfra.errors import AiinfraError
from aiinfra.governance import signing

DEFAULT_KEY_ENV = "AIINFRA_SIGNING_KEY"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aiinfra keys", description="model-signing keys: generate, show, sign, verify")
    sub = p.add_subparsers(dest="action", required=True)
    g = sub.add_parser("generate", help="a new Ed25519 key pair (private key file mode 0600)")
    g.add_argument("--out", default="keys", help="directory for signing.key and signing.pub (default: keys)")
    g.add_argument("--force", action="store_true", help="replace an existing signing.key")
    g.add_argument("--print-private", action="store_true", help="also print the private key (base64 raw)")
    s = sub.add_parser("show", help="the public key and key id of the signing key in the environment")
    s.add_argument("--key-env", default=DEFAULT_KEY_ENV, help=f"the variable holding it (default {DEFAULT_KEY_ENV})")
    sg = sub.add_parser("sign", help="sign a model directory with the key in the environment")
    sg.add_argument("model_dir")
    sg.add_argument("--key-env", default=DEFAULT_KEY_ENV, help=f"the variable holding it (default {DEFAULT_KEY_ENV})")
    v = sub.add_parser("verify", help="verify a model directory with the project's signing config (exit 0/1)")
    v.add_argument("model", help="a model directory, or models:/<name>@<alias> / models:/<name>/<version>")
    v.add_argument("overrides", nargs="*", help="config overrides, e.g. signing.trusted_keys=[...]")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return {"generate": _generate, "show": _show, "sign": _sign, "verify": _verify}[args.action](args)


def _generate(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    out = Path(args.out)
    private_path, public_path = out / "signing.key", out / "signing.pub"
    if private_path.exists() and not args.force:
        raise AiinfraError(
            f"{private_path} exists: not replacing a signing key (models it signed would no longer verify "
            "against a new one)",
            hint="pick another --out, or --force to replace it",
        )
    out.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    tmp = private_path.with_name(".signing.key.tmp")
    tmp.unlink(missing_ok=True)
    # created 0600 from the start: the private key is never readable by others, not even briefly
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    tmp.replace(private_path)
    public_path.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    raw = signing.public_raw(key.public_key())
    print(f"wrote {private_path} (private key, mode 0600: keep it secret) and {public_path} (public key)")
    print(f"key id:     {signing.key_id(raw)}")
    print(f"public key: {signing.b64(raw)}")
    print("sign models at train (the key comes from the environment only):")
    print(f'  export {DEFAULT_KEY_ENV}="$(cat {private_path})"')
    print("trust it where models are served and registered (conf/config.yaml, the command line or the environment):")
    print(f'  signing.trusted_keys: ["{signing.b64(raw)}"]    (or [{public_path}])')
    print(f"  aiinfra serve 'signing.trusted_keys=[\"{signing.b64(raw)}\"]'")
    print(f'  export AIINFRA_TRUSTED_KEYS="{signing.b64(raw)}"')
    if args.print_private:
        from cryptography.hazmat.primitives import serialization as ser

        private_raw = key.private_bytes(ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption())
        print(f"private key (base64 raw, --print-private): {signing.b64(private_raw)}")
    return 0


def _env_key(key_env: str) -> Any:
    text = os.environ.get(key_env, "")
    if not text.strip():
        raise AiinfraError(
            f"${key_env} is not set",
            hint=f'`aiinfra keys generate`, then export {key_env}="$(cat keys/signing.key)"',
        )
    return signing.parse_private_key(text, f"${key_env}")


def _show(args: argparse.Namespace) -> int:
    raw = signing.public_raw(_env_key(args.key_env).public_key())
    print(f"key id:     {signing.key_id(raw)}")
    print(f"public key: {signing.b64(raw)}")
    return 0


def _sign(args: argparse.Namespace) -> int:
    model_dir = Path(args.model_dir)
    if not (model_dir / "model.json").is_file():
        raise AiinfraError(f"{model_dir} is not a model directory (no model.json)", hint="give models/model")
    manifest = signing.sign_with(model_dir, _env_key(args.key_env))
    print(f"signed {model_dir}: {len(manifest['files'])} files, key {manifest['signer']['key_id']}")
    return 0


def _config(overrides: list[str]) -> Any:
    """The project's typed config (chdir's to the project root, as every command does)."""
    from aiinfra.config.compose import compose, find_project_root
    from aiinfra.config.validate import validate
    from aiinfra.plugins.manager import get_plugins

    root = find_project_root()
    os.chdir(root)
    return validate(compose(overrides, root / "conf"), get_plugins().registry)


def _verify(args: argparse.Namespace) -> int:
    from aiinfra.tracking.mlflow_setup import remove_download, resolve_model  # mlflow only for models:/ URIs

    given = args.model
    if "://" not in given and not given.startswith("models:"):
        given = str(Path(given).resolve())  # relative to where the command runs, not the project root
    cfg = _config(list(args.overrides))
    resolved = resolve_model(given, cfg)
    try:
        cfg_sign = cfg.signing
        if str(cfg_sign.mode) == "off":
            # an explicit check: verify as `require` would, whatever the mode, and say what was found
            from dataclasses import replace

            cfg_sign = replace(cfg_sign, mode="require")
        verdict = signing.check_model_dir(resolved.path, cfg_sign)
    finally:
        remove_download(resolved)
    if verdict.status == "ok":
        print(f"{args.model}: ok: {verdict.files} files, signed by {verdict.key_id} at {verdict.signed_at}")
        return 0
    print(f"{args.model}: {verdict.status}: " + "; ".join(verdict.problems), file=sys.stderr)
    return 1
