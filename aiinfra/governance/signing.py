"""Model signing: a manifest of per-file SHA-256 hashes of a model directory, signed with Ed25519.

``train`` signs the model directory it saved (:func:`sign_model_dir`) with the private key in the
environment variable ``signing.key_env``; ``serve`` (every runtime, every hot reload, batch
scoring) and ``register`` verify it (:func:`verify_model_dir`) before loading it or moving an
alias. The signature lives in the directory itself (``signature.json``), so it travels with the
directory into MLflow's artifact store and back out of every registry download.

``signature.json``::

    {"format": "aiinfra-model-signature/1",
     "manifest": {"hash": "sha256",
                  "files": [{"path": "weights.pt", "size": 1234, "sha256": "<hex>"}, ...],
                  "signer": {"algorithm": "ed25519", "public_key": "<base64 raw 32 bytes>",
                             "key_id": "ed25519:<16 hex>"},
                  "signed_at": "<ISO-8601 UTC>"},
     "signature": "<base64 Ed25519 signature over canonical_bytes(manifest)>"}

The manifest lists *every* file of the directory but ``signature.json`` itself: a file changed,
added or removed after signing is refused, by name. The signer's public key is in the manifest
so a verifier can check the signature before it knows whether it trusts the key; trust is a
separate check against ``signing.trusted_keys`` and ``$AIINFRA_TRUSTED_KEYS`` (with none
configured, ``require`` refuses and ``warn`` warns: an unlisted key proves only integrity).

Nothing secret is ever written or logged: messages name files, hashes and public-key ids only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiinfra.errors import AiinfraError

log = logging.getLogger(__name__)

SIGNATURE_FILE = "signature.json"
FORMAT = "aiinfra-model-signature/1"
_CHUNK = 1 << 20  # hash in 1 MiB reads: constant memory for any weights file

#: set once the "not signed" warning of sign_model_dir was logged in this process
_warned_unsigned = False


class SignatureError(AiinfraError):
    """A model directory failed verification in ``signing.mode=require`` (exit status 2)."""

    def __init__(self, message: str, hint: str | None = None, verdict: Verdict | None = None):
        super().__init__(message, hint)
        self.verdict = verdict


# -- keys ------------------------------------------------------------------------------------


def key_id(public_raw: bytes) -> str:
    """A short, stable fingerprint of a raw Ed25519 public key (not secret)."""
    return "ed25519:" + hashlib.sha256(public_raw).hexdigest()[:16]


def public_raw(public_key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def parse_private_key(text: str, where: str) -> Any:
    """An Ed25519 private key from PEM (PKCS8) or base64 of its 32 raw bytes. ``where`` names the
    source (the variable) in the error; the key's content never appears in one."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ValueError("not an Ed25519 key")
            return key
        raw = base64.b64decode(text, validate=True)
        if len(raw) != 32:
            raise ValueError("not 32 bytes")
        return Ed25519PrivateKey.from_private_bytes(raw)
    except (ValueError, TypeError, binascii.Error):
        raise AiinfraError(
            f"{where} is not an Ed25519 private key (expected PEM PKCS8 or base64 of the 32 raw bytes)",
            hint="make one with `aiinfra keys generate`, then export "
            f'{where.removeprefix("$")}="$(cat keys/signing.key)"',
        ) from None


def describe_key_entry(entry: str) -> str:
    """How a trusted-key entry is named in a message: a file path as it is, anything else only by
    its form. A private key pasted where a public one belongs must never be echoed."""
    entry = entry.strip()
    if "PRIVATE" in entry.upper():
        return "a PRIVATE key (list the public key that `aiinfra keys generate` prints, never the private one)"
    if entry.endswith((".pem", ".pub")) and "\n" not in entry and len(entry) < 4096:
        return repr(entry)
    return f"a value of {len(entry)} characters"


def parse_public_key(entry: str, where: str = "trusted key") -> bytes:
    """The raw 32 bytes of a trusted public key: a PEM file's path, or base64 of the raw bytes.
    Raises ValueError naming ``where`` and the entry's form (never a value that might be secret)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    entry = entry.strip()
    text = entry
    shown = describe_key_entry(entry)
    if entry.endswith((".pem", ".pub")) and "\n" not in entry:
        try:
            text = Path(entry).read_text().strip()
        except OSError as exc:
            raise ValueError(f"{where}: file {shown} cannot be read ({exc.strerror})") from None
        if "PRIVATE" in text.upper():
            raise ValueError(f"{where}: file {shown} holds a PRIVATE key; list the public key file") from None
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError
            return public_raw(key)
        raw = base64.b64decode(text, validate=True)
        if len(raw) != 32:
            raise ValueError
        return raw
    except (ValueError, TypeError, binascii.Error):
        raise ValueError(
            f"{where}: {shown} is neither an Ed25519 public key file (PEM) nor base64 of 32 raw bytes"
        ) from None


def trusted_keys(cfg: Any) -> dict[str, bytes]:
    """{key id: raw public key} of ``cfg.trusted_keys`` and ``$<cfg.trusted_keys_env>``."""
    entries = [(f"signing.trusted_keys[{i}]", str(e)) for i, e in enumerate(cfg.trusted_keys or [])]
    env = os.environ.get(cfg.trusted_keys_env or "", "")
    entries += [
        (f"${cfg.trusted_keys_env} entry {i + 1}", e) for i, e in enumerate(x for x in env.split(";") if x.strip())
    ]
    keys = {}
    for where, entry in entries:
        try:
            raw = parse_public_key(entry, where)
        except ValueError as exc:
            raise AiinfraError(
                str(exc), hint="list PEM files or base64 keys as `aiinfra keys generate` prints them"
            ) from None
        keys[key_id(raw)] = raw
    return keys


def signing_key(cfg: Any) -> Any | None:
    """The private key in ``$<cfg.key_env>``, or None when the variable is unset or empty."""
    text = os.environ.get(cfg.key_env or "", "")
    return parse_private_key(text, f"${cfg.key_env}") if text.strip() else None


def require_signing_key(cfg: Any) -> None:
    """In ``require`` mode, fail now (before a training starts) when there is no usable key."""
    if str(cfg.mode) == "require" and signing_key(cfg) is None:
        raise AiinfraError(_no_key_message(cfg), hint=_no_key_hint(cfg))


def _no_key_message(cfg: Any) -> str:
    return f"signing.mode=require but ${cfg.key_env} is not set: the model cannot be signed"


def _no_key_hint(cfg: Any) -> str:
    return f'`aiinfra keys generate`, then export {cfg.key_env}="$(cat keys/signing.key)" (or signing.mode=warn)'


# -- the manifest ----------------------------------------------------------------------------


def canonical_bytes(manifest: dict[str, Any]) -> bytes:
    """The bytes that are signed: sorted keys, no whitespace, ASCII (one encoding, every platform)."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _files(model_dir: Path) -> dict[str, Path]:
    """Every file under ``model_dir`` by POSIX relative path, ``signature.json`` left out."""
    found = {}
    for root, dirs, names in os.walk(model_dir):
        dirs.sort()
        # os.walk does not descend into a linked directory: list the link itself, so that a
        # directory linked in after signing is an added (unsigned) entry, not invisible
        names = names + [d for d in dirs if (Path(root) / d).is_symlink()]
        for name in names:
            path = Path(root) / name
            rel = path.relative_to(model_dir).as_posix()
            if rel != SIGNATURE_FILE:
                found[rel] = path
    return dict(sorted(found.items()))


def build_manifest(model_dir: Path, public: bytes) -> dict[str, Any]:
    files = [
        {"path": rel, "size": path.stat().st_size, "sha256": sha256_file(path)}
        for rel, path in _files(model_dir).items()
    ]
    return {
        "hash": "sha256",
        "files": files,
        "signer": {"algorithm": "ed25519", "public_key": b64(public), "key_id": key_id(public)},
        "signed_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def sign_with(model_dir: Path, key: Any) -> dict[str, Any]:
    """Write ``signature.json`` for ``model_dir`` with the private key ``key``; returns the manifest."""
    model_dir = Path(model_dir)
    manifest = build_manifest(model_dir, public_raw(key.public_key()))
    doc = {"format": FORMAT, "manifest": manifest, "signature": b64(key.sign(canonical_bytes(manifest)))}
    tmp = model_dir / f".{SIGNATURE_FILE}.tmp"
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    tmp.replace(model_dir / SIGNATURE_FILE)  # atomic: a reader never sees half a signature
    return manifest


def sign_model_dir(model_dir: Path, cfg: Any) -> dict[str, Any] | None:
    """Sign ``model_dir`` with the key in ``cfg.key_env`` (``cfg``: :class:`SigningConfig`).

    A signature left by an earlier training in the same directory is removed first (it would
    name files that changed). No key: ``warn`` logs once and writes nothing; ``require`` raises
    (the directory stays, unsigned, and the stage fails with exit status 2 before MLflow logs
    it; :func:`require_signing_key` is the cheap check to run before training starts); ``off``
    does nothing. Returns the manifest, or None when nothing was signed.
    """
    global _warned_unsigned
    model_dir = Path(model_dir)
    (model_dir / SIGNATURE_FILE).unlink(missing_ok=True)
    mode = str(cfg.mode)
    if mode == "off":
        return None
    key = signing_key(cfg)
    if key is None:
        if mode == "require":
            raise AiinfraError(_no_key_message(cfg), hint=_no_key_hint(cfg))
        if not _warned_unsigned:
            _warned_unsigned = True
            log.warning(
                "model not signed: set %s (aiinfra keys generate), or signing.mode=off to silence this", cfg.key_env
            )
        return None
    manifest = sign_with(model_dir, key)
    log.info("signed %s: %d files, key %s", model_dir, len(manifest["files"]), manifest["signer"]["key_id"])
    return manifest


def read_signature(model_dir: Path) -> dict[str, Any] | None:
    """The parsed ``signature.json`` of ``model_dir``; None when the directory is unsigned."""
    path = Path(model_dir) / SIGNATURE_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def signed_files(model_dir: Path) -> set[str] | None:
    """The relative paths the directory's manifest covers; None when it is unsigned or unreadable.
    (A runtime that derives a file, e.g. onnx's ``model.onnx``, must not write it into a signed
    directory unless the manifest covers it.)"""
    try:
        doc = read_signature(model_dir)
        return {str(f["path"]) for f in doc["manifest"]["files"]} if doc else None
    except (ValueError, KeyError, TypeError, OSError):
        return None


# -- verification ----------------------------------------------------------------------------


@dataclass
class Verdict:
    """What verification found. ``status``: ``ok``, ``off`` (not checked), ``unsigned``,
    ``tampered`` (a file changed, added or removed, or the signature does not verify),
    ``untrusted`` (intact, but signed by a key not in the trusted keys)."""

    status: str
    mode: str
    model_dir: str
    problems: list[str] = field(default_factory=list)
    key_id: str | None = None
    signed_at: str | None = None
    files: int = 0

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "off")

    def to_dict(self) -> dict[str, Any]:
        """For the audit log and the model card: no secret in it."""
        return {
            "status": self.status,
            "mode": self.mode,
            "key_id": self.key_id,
            "signed_at": self.signed_at,
            "files": self.files,
            "problems": list(self.problems),
        }


def check_model_dir(model_dir: Path, cfg: Any) -> Verdict:
    """Verify ``model_dir`` against its signature and the trusted keys; never raises for what it
    finds (the verdict says it), only for a malformed trusted-key entry in the config."""
    model_dir = Path(model_dir)
    mode = str(cfg.mode)
    if mode == "off":
        return Verdict("off", mode, str(model_dir))
    try:
        doc = read_signature(model_dir)
    except (ValueError, OSError) as exc:
        return Verdict("tampered", mode, str(model_dir), [f"{SIGNATURE_FILE} is unreadable ({exc})"])
    if doc is None:
        return Verdict("unsigned", mode, str(model_dir), [f"it is not signed (no {SIGNATURE_FILE})"])
    try:
        manifest = doc["manifest"]
        signer = manifest["signer"]
        public = base64.b64decode(signer["public_key"], validate=True)
        signature = base64.b64decode(doc["signature"], validate=True)
        listed = {str(f["path"]): f for f in manifest["files"]}
        if doc.get("format") != FORMAT or manifest.get("hash") != "sha256" or len(public) != 32:
            raise ValueError
    except (KeyError, TypeError, ValueError, binascii.Error):
        return Verdict("tampered", mode, str(model_dir), [f"{SIGNATURE_FILE} is malformed (not {FORMAT})"])
    kid = key_id(public)
    verdict = Verdict("ok", mode, str(model_dir), key_id=kid, signed_at=manifest.get("signed_at"), files=len(listed))

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, canonical_bytes(manifest))
    except (InvalidSignature, ValueError):
        verdict.status = "tampered"
        verdict.problems.append(
            f"the signature of {SIGNATURE_FILE} does not verify: the manifest was edited after signing"
        )
        return verdict  # an edited manifest's hashes prove nothing: no file check against them

    present = _files(model_dir)
    for rel, entry in listed.items():
        path = present.get(rel)
        if path is None:
            verdict.problems.append(f"{rel} was removed after signing")
            continue
        digest = sha256_file(path)
        if digest != entry.get("sha256"):
            verdict.problems.append(
                f"{rel} changed after signing: sha256 {digest[:16]}... != manifest {str(entry.get('sha256'))[:16]}..."
            )
    for rel in present:
        if rel not in listed:
            verdict.problems.append(f"{rel} was added after signing (not in the manifest)")
    if verdict.problems:
        verdict.status = "tampered"
        return verdict

    trusted = trusted_keys(cfg)
    # the whole public key, not only its 64-bit id, must be a trusted one
    if trusted.get(kid) != public:
        verdict.status = "untrusted"
        if trusted:
            listed_ids = ", ".join(sorted(trusted))
            verdict.problems.append(f"its signer {kid} is not one of the trusted keys ({listed_ids})")
        else:
            verdict.problems.append(
                f"its signer {kid} is not trusted: no trusted keys are configured "
                f"(signing.trusted_keys, ${cfg.trusted_keys_env})"
            )
    return verdict


def _hint(verdict: Verdict, cfg: Any) -> str:
    if verdict.status == "unsigned":
        return (
            f"train it with a signing key (`aiinfra keys generate`, export {cfg.key_env}), "
            "or sign this directory with `aiinfra keys sign DIR`; signing.mode=warn loads it with a warning"
        )
    if verdict.status == "untrusted":
        return (
            f"if you trust {verdict.key_id}, add its public key to signing.trusted_keys or ${cfg.trusted_keys_env} "
            "(`aiinfra keys show` prints it)"
        )
    return (
        "its files are not the ones that were signed: retrain it (`aiinfra train`) or restore the original "
        "files; `aiinfra keys verify MODEL` re-checks"
    )


def verify_model_dir(model_dir: Path, cfg: Any, purpose: str = "serve", what: str | None = None) -> Verdict:
    """Check ``model_dir`` (``cfg``: :class:`SigningConfig`) before ``purpose`` (``serve`` or
    ``register``). ``require``: anything but an intact directory signed by a trusted key raises
    one :class:`SignatureError` naming each problem and the fix; ``warn``: one warning; ``off``:
    nothing is checked. Returns the verdict for the caller to log and audit. ``what`` names the
    model in messages (default: the directory)."""
    verdict = check_model_dir(model_dir, cfg)
    if verdict.ok:
        if verdict.status == "ok":
            log.info(
                "signature of %s verified: %d files, signed by %s", what or model_dir, verdict.files, verdict.key_id
            )
        return verdict
    message = f"{what or model_dir}: " + "; ".join(verdict.problems)
    if verdict.mode == "require":
        raise SignatureError(f"refusing to {purpose} {message}", hint=_hint(verdict, cfg), verdict=verdict)
    log.warning("%s (signing.mode=warn: %s anyway)", message, "serving it" if purpose == "serve" else "going on")
    return verdict
