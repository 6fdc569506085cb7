"""API keys with roles, read from the environment and/or a file; constant-time comparison.

Key entries: ``<id>:<role>[+<role>]:<secret>``, separated by ``;`` or newlines (``#`` starts a
comment line in the file). Roles: ``predict`` (infer, invocations, model metadata) and ``admin``
(reload, config; implies predict). Clients send ``Authorization: Bearer <secret>`` or
``X-API-Key: <secret>``. Only the key's id ever reaches a log.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from aiinfra.errors import AiinfraError

ROLES = ("predict", "admin")
IMPLIED = {"admin": {"admin", "predict"}, "predict": {"predict"}}


@dataclass(frozen=True)
class ApiKey:
    id: str
    roles: frozenset[str]
    digest: bytes  # sha256 of the secret: equal-length compare, the secret is not kept


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def parse_keys(text: str, source: str) -> list[ApiKey]:
    keys = []
    for n, raw in enumerate(text.replace(";", "\n").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":", 2)
        if len(parts) != 3 or not parts[0] or not parts[2]:
            raise AiinfraError(
                f"API key entry {n} in {source} is malformed (the secret is not shown)",
                hint="write entries as <id>:<role>[+<role>]:<secret>, e.g. ci:predict:s3cret",
            )
        kid, roles_text, secret = parts
        # An entry with its fields in the wrong order puts the secret where the id or the role
        # belongs, so no message names any field of an entry: only its number and the source.
        roles: set[str] = set()
        for role in roles_text.split("+"):
            if role not in IMPLIED:
                raise AiinfraError(
                    f"API key entry {n} in {source}: the role field is not one of {', '.join(ROLES)} "
                    "(the entry is not shown: its fields may be in the wrong order)",
                    hint="write entries as <id>:<role>[+<role>]:<secret>, e.g. ci:predict:s3cret...",
                )
            roles |= IMPLIED[role]
        if len(secret) < 16:
            raise AiinfraError(
                f"API key entry {n} in {source}: the secret (third field) is shorter than 16 characters "
                "(the entry is not shown)",
                hint="write entries as <id>:<role>[+<role>]:<secret>; generate a secret: "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'",
            )
        keys.append(ApiKey(kid, frozenset(roles), _digest(secret)))
    return keys


class KeyStore:
    def __init__(self, keys: list[ApiKey]):
        ids = [k.id for k in keys]
        dupes = [n for n, i in enumerate(ids, 1) if ids.count(i) > 1]
        if dupes:  # by position: an id may be a secret written in the wrong field
            raise AiinfraError(
                f"API keys {', '.join(map(str, dupes))} (counting entries in the order read) share an id",
                hint="give every key its own id: <id>:<role>[+<role>]:<secret>",
            )
        self.keys = keys

    @classmethod
    def from_config(cls, server_cfg) -> KeyStore:
        """The keys named by the typed ``cfg.server`` (``api_keys_env``, ``api_keys_file``)."""
        keys: list[ApiKey] = []
        env_name = server_cfg.api_keys_env
        if env_name and os.environ.get(env_name):
            keys += parse_keys(os.environ[env_name], f"${env_name}")
        if server_cfg.api_keys_file:
            p = Path(server_cfg.api_keys_file)
            if not p.is_file():
                raise AiinfraError(f"server.api_keys_file '{p}' does not exist")
            keys += parse_keys(p.read_text(), str(p))
        return cls(keys)

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def identify(self, secret: str | None) -> ApiKey | None:
        """The key whose secret this is, or None; compares against every key (no early exit)."""
        if not secret:
            return None
        d = _digest(secret)
        found = None
        for key in self.keys:
            if hmac.compare_digest(d, key.digest):
                found = key
        return found


def secret_from_headers(headers) -> str | None:
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value:
            return value.strip()
    return headers.get("x-api-key")


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, keys: KeyStore, allow_unauthenticated: bool) -> None:
    """Refuse to expose an unauthenticated server beyond this machine unless explicitly allowed."""
    if keys.enabled or allow_unauthenticated or is_loopback(host):
        return
    raise AiinfraError(
        f"refusing to listen on {host} without API keys: anyone who can reach it could use the model.",
        hint="set API keys (server.api_keys_env, default AIINFRA_API_KEYS, or server.api_keys_file), "
        "or pass server.allow_unauthenticated=true (e.g. behind an authenticating proxy)",
    )
