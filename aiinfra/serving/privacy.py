"""What the prediction log and the feedback log keep of each column (``server.log_privacy``).

Per column: ``keep`` (as sent), ``drop`` (not written), ``hash`` (hex HMAC-SHA256 with the key in
the environment variable ``hmac_key_env``: equal values give equal hashes, in both logs, so joins
and counts still work, but the value cannot be read back without the key), ``redact`` (every value
``"[redacted]"``, nulls stay null). ``columns`` names the model's features and ``request_id``
(``keep`` or ``hash`` only: the feedback log joins on it); ``default`` applies to every feature
not listed. A name the model does not have, or a missing key, is one error at server start.

The policy is applied where a whole part file is built (:mod:`aiinfra.serving.predlog`,
:mod:`aiinfra.serving.feedback`), column by column: a hash is computed once per distinct value of
the part (dictionary-encoded), not per row or per request. Nothing reaches disk unprotected: the
log directory and the spool directory receive only protected parts. Each part records its
policies in the schema metadata (``aiinfra.log_privacy``), so a reader knows which columns are
protected without the server's config. When encryption is on, :mod:`aiinfra.serving.log_crypto`
supplies each part's encryption properties.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any

from aiinfra.errors import ConfigError, choices_text, did_you_mean

KEEP, DROP, HASH, REDACT = "keep", "drop", "hash", "redact"
REDACTED = "[redacted]"
REQUEST_ID = "request_id"
#: schema metadata key of a part: JSON {column: policy} of the columns that are not kept as sent
METADATA_KEY = b"aiinfra.log_privacy"
MIN_KEY_CHARS = 16


def hmac_hex(key: bytes, value: str) -> str:
    """The hash policy of one value: hex HMAC-SHA256 (the reference :func:`hash_array` equals)."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def _hmac_many(key: bytes, values: list[str]) -> list[str]:
    """hex HMAC-SHA256 of many values: the key's inner and outer pads are hashed once and each
    value continues from copies of them (RFC 2104), 2-4x faster than ``hmac.digest`` per value
    (measured: it looks the digest up on every call)."""
    if len(key) > 64:  # SHA-256's block size: longer keys are hashed first, as hmac does
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    out = []
    for v in values:
        i = inner.copy()
        i.update(v.encode("utf-8"))
        o = outer.copy()
        o.update(i.digest())
        out.append(o.hexdigest())
    return out


def hash_array(values: Any, key: bytes) -> Any:
    """A pyarrow array -> its hex HMAC-SHA256s (strings; nulls stay null). Each distinct value is
    hashed once (dictionary encoding), then taken back to the rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        values = pc.cast(values, pa.string())  # numbers, bools, times: hashed as their text
    encoded = pc.dictionary_encode(values)
    uniques = _hmac_many(key, encoded.dictionary.to_pylist())
    return pc.take(pa.array(uniques, pa.string()), encoded.indices)


def redact_array(values: Any) -> Any:
    """Every value ``"[redacted]"``; nulls stay null (a string column)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return pc.if_else(pc.is_valid(values), pa.scalar(REDACTED, pa.string()), pa.scalar(None, pa.string()))


def _hmac_key(env: str) -> bytes:
    raw = os.environ.get(env, "")
    fix = f"export {env}=$(python -c 'import secrets; print(secrets.token_hex(32))')"
    if not raw:
        raise ConfigError(
            f"server.log_privacy hashes columns but the environment variable {env} (the HMAC key) is not set",
            hint=f"{fix}  (the same key in every server and run, or hashes stop matching)",
        )
    if len(raw) < MIN_KEY_CHARS:
        raise ConfigError(f"the HMAC key in {env} is too short (fewer than {MIN_KEY_CHARS} characters)", hint=fix)
    return raw.encode("utf-8")


class LogPrivacy:
    """The policies of one server (and its encryption); :meth:`apply` protects one part's columns."""

    def __init__(
        self,
        columns: dict[str, str] | None = None,
        default: str = KEEP,
        key: bytes | None = None,
        crypto: Any | None = None,
    ):
        self.columns = {str(k): str(v) for k, v in (columns or {}).items()}
        self.default = str(default)
        self.key = key
        self.crypto = crypto  # aiinfra.serving.log_crypto.LogCrypto, or None (plaintext parts)
        self._plans: dict[tuple[str, ...], dict[str, str]] = {}
        if (HASH in self.columns.values() or self.default == HASH) and key is None:
            raise ValueError("a hash policy needs a key")

    @classmethod
    def from_config(cls, server_cfg: Any, features: list[str]) -> LogPrivacy:
        """The server's policies, checked against the model's ``features`` (one clear error at start
        for an unknown column, a missing key, a missing master key)."""
        p = server_cfg.log_privacy
        columns = {str(k): str(v) for k, v in p.columns.items()}
        known = [*features, REQUEST_ID]
        for name, policy in columns.items():
            if name not in known:
                raise ConfigError(
                    f"server.log_privacy.columns names column '{name}', which the model does not have."
                    + did_you_mean(name, known),
                    hint=f"the model's columns: {choices_text(known)}",
                )
            if name == REQUEST_ID and policy not in (KEEP, HASH):
                raise ConfigError(
                    f"server.log_privacy.columns.{REQUEST_ID}: '{policy}' would break the join of "
                    "labels to predictions",
                    hint=f"use keep or hash ({REQUEST_ID} is hashed alike in both logs, so joins still work)",
                )
        uses_hash = HASH in columns.values() or str(p.default) == HASH
        key = _hmac_key(p.hmac_key_env) if uses_hash else None
        from aiinfra.serving.log_crypto import writer_crypto

        return cls(columns, str(p.default), key, writer_crypto(server_cfg))

    @property
    def active(self) -> bool:
        """Whether anything is changed at all (else parts are written as they always were)."""
        return self.default != KEEP or any(v != KEEP for v in self.columns.values())

    def plan(self, features: list[str]) -> dict[str, str]:
        """{column: policy} of the protected columns of a part with these features (cached)."""
        key = tuple(features)
        found = self._plans.get(key)
        if found is None:
            found = {f: self.columns.get(f, self.default) for f in features}
            if REQUEST_ID in self.columns:
                found[REQUEST_ID] = self.columns[REQUEST_ID]
            found = {c: p for c, p in found.items() if p != KEEP}
            self._plans[key] = found
        return found

    def apply(self, cols: dict[str, Any], features: list[str]) -> dict[str, Any]:
        """Protect a part's columns (name -> pyarrow array), in place; returns ``cols``."""
        for name, policy in self.plan(features).items():
            if name not in cols:
                continue
            if policy == DROP:
                del cols[name]
            elif policy == HASH:
                cols[name] = hash_array(cols[name], self.key)
            elif policy == REDACT:
                cols[name] = redact_array(cols[name])
        return cols

    def metadata(self, features: list[str]) -> dict[bytes, bytes] | None:
        """The schema metadata that records the part's protected columns (None: nothing protected)."""
        plan = self.plan(features)
        return {METADATA_KEY: json.dumps(plan, sort_keys=True).encode()} if plan else None

    def table(self, cols: dict[str, Any], features: list[str]) -> Any:
        """A protected pyarrow Table from a part's columns."""
        import pyarrow as pa

        if not self.active:
            return pa.table(cols)
        return pa.table(self.apply(cols, features), metadata=self.metadata(features))

    def write_options(self) -> dict[str, Any]:
        """Extra keyword arguments of ``pq.write_table`` for one part (encryption, when on)."""
        if self.crypto is None:
            return {}
        return {"encryption_properties": self.crypto.encryption_properties()}

    def read_options(self) -> dict[str, Any]:
        """Keyword arguments of ``pq.read_metadata``/``read_table`` for the parts this writes."""
        if self.crypto is None:
            return {}
        return {"decryption_properties": self.crypto.decryption_properties()}


def protected_columns(schema: Any) -> dict[str, str]:
    """{column: policy} recorded in a part's (or dataset's) schema metadata; {} when none."""
    meta = getattr(schema, "metadata", None) or {}
    raw = meta.get(METADATA_KEY)
    if not raw:
        return {}
    try:
        found = json.loads(raw)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def configured_protected(server_cfg: Any) -> dict[str, str]:
    """{column: policy} the config protects (the monitor's view; the default is not resolvable
    without the model's features, so it is reported under ``"*"``)."""
    p = getattr(server_cfg, "log_privacy", None)
    if p is None:
        return {}
    out = {str(k): str(v) for k, v in p.columns.items() if str(v) != KEEP}
    if str(p.default) != KEEP:
        out["*"] = str(p.default)
    return out
