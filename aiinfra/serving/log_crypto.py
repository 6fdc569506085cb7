"""Encryption at rest of the prediction log and the feedback log: Parquet modular encryption.

Every part file is written with pyarrow's ``pyarrow.parquet.encryption``: the footer and every
column are encrypted (AES-GCM) with fresh data keys; the data keys are wrapped by key-encryption
keys, which the KMS client wraps with the master key ``server.log_privacy.footer_key`` (double
wrapping: the KMS is asked once per key-encryption key, not once per file). Nothing readable is
left in a part: a reader needs the master key to open even its footer (the file ends in ``PARE``,
not ``PAR1``).

The KMS client is a component of kind ``kms`` (``server.log_privacy.kms``), a class built as
``KmsClient(server_cfg)`` (``server_cfg``: the typed ``cfg.server``) with
``wrap_key(key: bytes, master_key_id: str) -> str`` and
``unwrap_key(wrapped: str, master_key_id: str) -> bytes``. Built in: ``env``
(:class:`EnvKmsClient`): master keys from the environment variable
``server.log_privacy.master_keys_env`` as ``"<id>:<base64 of a 16/24/32-byte key>;..."``; data
keys wrapped with AES-GCM (``cryptography``). A key never appears in a message or a log line.

Writers call :func:`encryption_properties` per part; readers (the monitor, the retrain export, the
spool replay) use :func:`decryption_properties`, :func:`parquet_format` (datasets) or
:func:`read_parquet`; plaintext parts read with them too, so a log that was encrypted from some
day on reads as one.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import os
import threading
from pathlib import Path
from typing import Any

from aiinfra.errors import AiinfraError, ConfigError
from aiinfra.storage import urls

#: the last 4 bytes of a Parquet file with an encrypted footer (a plaintext one ends in PAR1)
ENCRYPTED_MAGIC = b"PARE"
KEY_SIZES = (16, 24, 32)
# how long pyarrow caches unwrapped key-encryption keys (a long-running server re-asks the KMS then)
CACHE = dt.timedelta(minutes=10)


def _privacy(server_cfg: Any) -> Any:
    return getattr(server_cfg, "log_privacy", None)


def generate_key() -> str:
    """A new master key entry's value: base64 of 32 random bytes."""
    return base64.b64encode(os.urandom(32)).decode()


class EnvKmsClient:
    """``kms=env``: master keys from the environment variable ``server.log_privacy.master_keys_env``."""

    def __init__(self, server_cfg: Any):
        privacy = _privacy(server_cfg)
        self.env = privacy.master_keys_env
        raw = os.environ.get(self.env, "")
        hint = (
            f'export {self.env}="{privacy.footer_key}:$(python -c '
            "'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')\""
        )
        if not raw.strip():
            raise ConfigError(
                f"server.log_privacy.encrypt is on but the environment variable {self.env} is not set "
                "(it holds the master keys of the encrypted logs)",
                hint=hint,
            )
        self.keys: dict[str, bytes] = {}
        for n, entry in enumerate(e.strip() for e in raw.replace("\n", ";").split(";")):
            if not entry:
                continue
            key_id, sep, value = entry.partition(":")
            try:
                key = base64.b64decode(value.strip(), validate=True) if sep else b""
            except (binascii.Error, ValueError):
                key = b""
            if not key_id.strip() or len(key) not in KEY_SIZES:
                # the entry's position, never its value: it is a secret
                raise ConfigError(
                    f"{self.env}: entry {n + 1} is not '<key id>:<base64 of a 16, 24 or 32-byte key>'",
                    hint=hint,
                )
            self.keys[key_id.strip()] = key

    def _key(self, master_key_id: str) -> bytes:
        try:
            return self.keys[master_key_id]
        except KeyError:
            raise ConfigError(
                f"{self.env} has no master key '{master_key_id}' (it has: {', '.join(sorted(self.keys))})",
                hint=f"add '{master_key_id}:<base64 key>' to {self.env}, or set server.log_privacy.footer_key",
            ) from None

    def wrap_key(self, key: bytes, master_key_id: str) -> str:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(12)
        sealed = AESGCM(self._key(master_key_id)).encrypt(nonce, bytes(key), master_key_id.encode())
        return base64.b64encode(nonce + sealed).decode()

    def unwrap_key(self, wrapped: str, master_key_id: str) -> bytes:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        blob = base64.b64decode(wrapped)
        try:
            return AESGCM(self._key(master_key_id)).decrypt(blob[:12], blob[12:], master_key_id.encode())
        except InvalidTag:
            raise AiinfraError(
                f"the master key '{master_key_id}' in {self.env} does not open this log part "
                "(it was written with another key)",
                hint=f"put the key the part was written with into {self.env} (several entries may be given)",
            ) from None


def _load_client(server_cfg: Any) -> Any:
    """The configured KMS client (kind ``kms``), built with ``server_cfg``."""
    from aiinfra.plugins.manager import get_plugins

    name = _privacy(server_cfg).kms
    return get_plugins().registry.get("kms", name).load()(server_cfg)


class LogCrypto:
    """pyarrow's CryptoFactory over one KMS client: properties for writers and readers."""

    def __init__(self, server_cfg: Any, client: Any | None = None):
        import pyarrow.parquet.encryption as pe

        privacy = _privacy(server_cfg)
        self.footer_key = privacy.footer_key
        self.client = client if client is not None else _load_client(server_cfg)
        outer = self.client

        class _Adapter(pe.KmsClient):  # pyarrow calls a KmsClient subclass; ours need not be one
            def __init__(self, _config):
                pe.KmsClient.__init__(self)

            def wrap_key(self, key_bytes, master_key_identifier):
                return outer.wrap_key(bytes(key_bytes), master_key_identifier)

            def unwrap_key(self, wrapped_key, master_key_identifier):
                return outer.unwrap_key(wrapped_key, master_key_identifier)

        self.factory = pe.CryptoFactory(lambda config: _Adapter(config))
        self.kms_config = pe.KmsConnectionConfig()
        # uniform: the footer key encrypts the footer and every column (nothing left in the clear)
        self.enc_config = pe.EncryptionConfiguration(
            footer_key=self.footer_key, uniform_encryption=True, cache_lifetime=CACHE
        )
        self.dec_config = pe.DecryptionConfiguration(cache_lifetime=CACHE)
        self._format = None

    def verify(self) -> None:
        """Wrap and unwrap a random key with the footer key: a missing or wrong master key is one
        clear error now (at server or monitor start), not a failing writer later."""
        probe = os.urandom(16)
        try:
            wrapped = self.client.wrap_key(probe, self.footer_key)
            back = self.client.unwrap_key(wrapped, self.footer_key)
        except AiinfraError:
            raise
        except Exception as exc:  # a plugin KMS: its own error, named (its message is its own)
            raise ConfigError(
                f"the KMS client '{type(self.client).__name__}' cannot wrap a key with master key "
                f"'{self.footer_key}': {type(exc).__name__}: {str(exc)[:200]}",
                hint="check server.log_privacy.kms and server.log_privacy.footer_key",
            ) from None
        if bytes(back) != probe:
            raise ConfigError(
                f"the KMS client '{type(self.client).__name__}' does not give back the key it wrapped",
                hint="its unwrap_key must invert wrap_key",
            )

    def encryption_properties(self) -> Any:
        """For one part file (fresh data keys each time)."""
        return self.factory.file_encryption_properties(self.kms_config, self.enc_config)

    def decryption_properties(self) -> Any:
        return self.factory.file_decryption_properties(self.kms_config, self.dec_config)

    def parquet_format(self) -> Any:
        """A ``pyarrow.dataset`` Parquet format that decrypts (plaintext files read as well)."""
        if self._format is None:
            import pyarrow.dataset as ds

            config = ds.ParquetDecryptionConfig(self.factory, self.kms_config, self.dec_config)
            options = ds.ParquetFragmentScanOptions(decryption_config=config)
            self._format = ds.ParquetFileFormat(default_fragment_scan_options=options)
        return self._format


_CACHE: dict[tuple, LogCrypto] = {}
_LOCK = threading.Lock()


def _cache_key(server_cfg: Any) -> tuple:
    p = _privacy(server_cfg)
    # the environment's value as a digest: a changed key builds a new factory; the value itself is not kept
    env = hashlib.sha256(os.environ.get(p.master_keys_env, "").encode()).hexdigest()
    return (str(p.kms), p.master_keys_env, env, p.footer_key)


def crypto(server_cfg: Any, *, verify: bool = False) -> LogCrypto:
    """The (cached) :class:`LogCrypto` of ``server_cfg.log_privacy``; ``verify``: prove the master key works."""
    key = _cache_key(server_cfg)
    with _LOCK:
        found = _CACHE.get(key)
        if found is None:
            found = _CACHE[key] = LogCrypto(server_cfg)
    if verify:
        found.verify()
    return found


def writer_crypto(server_cfg: Any) -> LogCrypto | None:
    """What a writer encrypts with: None when ``server.log_privacy.encrypt`` is off; otherwise the
    master key is checked now (one clear error at start)."""
    privacy = _privacy(server_cfg)
    if privacy is None or not privacy.encrypt:
        return None
    return crypto(server_cfg, verify=True)


def reader_crypto(server_cfg: Any) -> LogCrypto | None:
    """What a reader decrypts with: None when the config has no encryption and the master-key
    variable is unset (plaintext logs); with ``encrypt`` on, a missing key is an error now."""
    privacy = _privacy(server_cfg)
    if privacy is None:
        return None
    if privacy.encrypt:
        return crypto(server_cfg, verify=True)
    if os.environ.get(privacy.master_keys_env, "").strip():
        return crypto(server_cfg)  # encryption switched off since: older parts may still be encrypted
    return None


def encryption_properties(server_cfg: Any) -> Any | None:
    """pyarrow FileEncryptionProperties for one part, or None (encryption off)."""
    c = writer_crypto(server_cfg)
    return c.encryption_properties() if c is not None else None


def decryption_properties(server_cfg: Any) -> Any | None:
    """pyarrow FileDecryptionProperties, or None (no encryption configured)."""
    c = reader_crypto(server_cfg)
    return c.decryption_properties() if c is not None else None


def is_encrypted(path: str | Path) -> bool:
    """Whether a Parquet file (local or on an object store) has an encrypted footer (ends in
    ``PARE``)."""
    try:
        with urls.open_file(path, "rb") as f:
            f.seek(-4, os.SEEK_END)
            return f.read(4) == ENCRYPTED_MAGIC
    except OSError:
        return False


def locked_part_error(path: str | Path, server_cfg: Any | None) -> AiinfraError:
    """An encrypted part and no master keys to open it."""
    privacy = _privacy(server_cfg) if server_cfg is not None else None
    env = privacy.master_keys_env if privacy is not None else "AIINFRA_LOG_MASTER_KEYS"
    return AiinfraError(
        f"{path} is encrypted (Parquet modular encryption) and no master key is configured to read it",
        hint=f"set {env} to the master keys the server wrote with ('<id>:<base64 key>;...'), "
        "or server.log_privacy.encrypt=true with the same keys",
    )


def read_parquet(path: str | Path, server_cfg: Any | None = None) -> Any:
    """A Parquet file (encrypted or not) as a pyarrow Table."""
    import pyarrow.parquet as pq

    props = decryption_properties(server_cfg) if server_cfg is not None else None
    if props is None and is_encrypted(path):
        raise locked_part_error(path, server_cfg)
    return pq.read_table(path, decryption_properties=props)


def read_metadata(path: str | Path, server_cfg: Any | None = None, c: LogCrypto | None = None) -> Any:
    """A Parquet file's footer (row counts, schema), encrypted or not."""
    import pyarrow.parquet as pq

    if c is None and server_cfg is not None:
        c = reader_crypto(server_cfg)
    if c is None and is_encrypted(path):
        raise locked_part_error(path, server_cfg)
    return pq.read_metadata(path, decryption_properties=c.decryption_properties() if c is not None else None)
