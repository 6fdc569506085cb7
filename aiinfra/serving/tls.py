"""HTTPS and mutual TLS for the HTTP server (``server.tls``): the files checked at startup, the
options uvicorn gets, and the client certificate's name for the access log.

:func:`uvicorn_tls_options` runs before the model loads: every file is read and parsed once, the key
is matched against the certificate (``SSLContext.load_cert_chain``), the client CA bundle must hold
a CA certificate; each failure is one :class:`~aiinfra.errors.AiinfraError` naming the file and the
fix. The key's password comes from the environment variable ``server.tls.keyfile_password_env``
only and never appears in a log line or an error.

The minimum protocol is TLS 1.2: Python (>= 3.10) sets it on every server context, and the
startup check refuses to run on a build where it does not. With ``client_ca`` every client must
present a certificate that CA signed (``CERT_REQUIRED``); the handshake fails otherwise, before a
request reaches the app.
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from aiinfra.errors import AiinfraError

log = logging.getLogger("aiinfra.serving")

MIN_VERSION = ssl.TLSVersion.TLSv1_2
#: a server certificate that expires within this many days is named in a warning at startup
EXPIRY_WARNING_DAYS = 14
#: the scope key the client certificate's subject CN travels under (mutual TLS only)
CLIENT_CN_KEY = "aiinfra.client_cn"
DOCS = "docs/tls.md"


def _fail(key: str, message: str, hint: str) -> AiinfraError:
    return AiinfraError(f"server.tls.{key}: {message}", hint=hint)


def _read(key: str, path: str) -> tuple[str, str]:
    """(absolute path, text) of a PEM file; one error if it is missing, not a file or unreadable."""
    full = str(Path(path).expanduser().resolve())
    if not os.path.exists(full):
        raise _fail(key, f"no such file: {full}", f"fix the path (relative: to the project), or make one: {DOCS}")
    if not os.path.isfile(full):
        raise _fail(key, f"not a file: {full}", f"name the PEM file itself: server.tls.{key}=/path/to/file.pem")
    try:
        with open(full, encoding="ascii", errors="replace") as f:
            return full, f.read()
    except OSError as exc:
        raise _fail(
            key,
            f"cannot read {full} ({exc.strerror})",
            "let the user running the server read it (e.g. chown that user; chmod 600 for a key)",
        ) from None


def _password(env: str | None, keyfile: str, encrypted: bool) -> str | None:
    if not env:
        if encrypted:
            raise _fail(
                "keyfile",
                f"{keyfile} is encrypted and no password is configured",
                "put its password in an environment variable and name it: "
                "server.tls.keyfile_password_env=AIINFRA_TLS_KEY_PASSWORD",
            )
        return None
    value = os.environ.get(env)
    if not value:
        raise _fail(
            "keyfile_password_env",
            f"the environment variable {env} is not set (it should hold the password of {keyfile})",
            f"export {env}=... before starting the server, or clear server.tls.keyfile_password_env",
        )
    return value


def _count_certs(key: str, path: str) -> dict[str, int]:
    """Parse every certificate of a PEM file; their counts (``x509``, ``x509_ca``)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        ctx.load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        raise _fail(
            key, f"{path} holds no readable PEM certificate ({exc.reason or exc})", f"expected PEM certificates: {DOCS}"
        ) from None
    return ctx.cert_store_stats()


def _check_expiry(certfile: str) -> None:
    # the stdlib's one certificate decoder is private; a Python without it just skips the check
    decode = getattr(getattr(ssl, "_ssl", None), "_test_decode_cert", None)
    if decode is None:
        return
    try:
        not_after = ssl.cert_time_to_seconds(decode(certfile)["notAfter"])
    except (ssl.SSLError, KeyError, ValueError, OSError):
        return
    left_days = (not_after - time.time()) / 86400
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(not_after))
    if left_days < 0:
        raise _fail("certfile", f"{certfile} expired on {stamp}", "renew the certificate (clients refuse it)")
    if left_days < EXPIRY_WARNING_DAYS:
        log.warning("server.tls.certfile: %s expires on %s (in %.1f days): renew it", certfile, stamp, left_days)


def server_context(tls: Any) -> ssl.SSLContext:
    """The server's SSL context as uvicorn will build it, built here once so that every problem
    is one clear error before the model loads. ``tls``: the typed ``server.tls``."""
    certfile, cert_text = _read("certfile", tls.certfile)
    keyfile, key_text = _read("keyfile", tls.keyfile)
    if "-----BEGIN CERTIFICATE-----" not in cert_text:
        hint = "expected a PEM certificate (-----BEGIN CERTIFICATE-----): " + DOCS
        raise _fail("certfile", f"{certfile} holds no PEM certificate", hint)
    if "PRIVATE KEY-----" not in key_text:
        raise _fail("keyfile", f"{keyfile} holds no PEM private key", f"expected '-----BEGIN PRIVATE KEY-----': {DOCS}")
    _count_certs("certfile", certfile)
    encrypted = "ENCRYPTED" in key_text  # PKCS#8 "ENCRYPTED PRIVATE KEY" or the legacy "Proc-Type: 4,ENCRYPTED"
    password = _password(tls.keyfile_password_env, keyfile, encrypted)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if ctx.minimum_version < MIN_VERSION:  # a Python/OpenSSL build with older defaults: not served
        raise AiinfraError(
            f"this Python's TLS server default allows {ctx.minimum_version.name} (older than TLS 1.2)",
            hint="run the server on Python >= 3.10 with OpenSSL >= 1.1.1",
        )
    try:
        # a callable, even without a password: OpenSSL would otherwise prompt on the terminal
        ctx.load_cert_chain(certfile, keyfile, password=lambda: password or "")
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise _fail(
                "keyfile",
                f"{keyfile} is not the private key of the certificate {certfile}",
                "name the key the certificate was issued for (server.tls.keyfile / server.tls.certfile)",
            ) from None
        if encrypted:
            raise _fail(
                "keyfile_password_env",
                f"the password in {tls.keyfile_password_env} does not decrypt {keyfile}",
                f"put the key's password in {tls.keyfile_password_env}",
            ) from None
        raise _fail(
            "keyfile",
            f"could not load {keyfile} with {certfile} ({exc.reason or 'PEM error'})",
            f"both must be PEM: the certificate (chain) and its unencrypted or password-protected key: {DOCS}",
        ) from None
    _check_expiry(certfile)
    if tls.client_ca:
        client_ca, _ = _read("client_ca", tls.client_ca)
        stats = _count_certs("client_ca", client_ca)
        if not stats.get("x509_ca"):
            raise _fail(
                "client_ca",
                f"{client_ca} holds no CA certificate (only end-entity certificates)",
                "name the certificate of the CA that signs the client certificates (CA:TRUE)",
            )
        ctx.load_verify_locations(cafile=client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def uvicorn_tls_options(tls: Any) -> dict[str, Any]:
    """uvicorn's ``ssl_*`` options (and the protocol class that records client names) for ``server.tls``,
    after :func:`server_context` checked every file; ``{}`` without TLS."""
    if tls is None or not tls.enabled:
        return {}
    server_context(tls)
    options: dict[str, Any] = {
        "ssl_certfile": str(Path(tls.certfile).expanduser().resolve()),
        "ssl_keyfile": str(Path(tls.keyfile).expanduser().resolve()),
    }
    if tls.keyfile_password_env:
        options["ssl_keyfile_password"] = os.environ[tls.keyfile_password_env]  # checked above; never logged
    if tls.client_ca:
        options["ssl_ca_certs"] = str(Path(tls.client_ca).expanduser().resolve())
        options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        # an import string: the worker processes of server.workers > 1 import it themselves
        options["http"] = f"{__name__}:ClientCertProtocol"
    return options


def describe(tls: Any) -> str:
    """The startup log's words on client certificates: "" without TLS."""
    if tls is None or not tls.enabled:
        return ""
    if tls.client_ca:
        return f", mutual TLS on: clients need a certificate signed by {Path(tls.client_ca).resolve()}"
    return ", mutual TLS off"


def client_cn(peercert: dict | None) -> str | None:
    """The subject common name of a verified peer certificate (``SSLSocket.getpeercert()``)."""
    if not peercert:
        return None
    for rdn in peercert.get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return value
    return None


class ClientCertProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol that also puts the client certificate's CN into every request's
    scope (``aiinfra.client_cn``), for the access log. Read once per connection: the handshake (and
    so the verification) is complete when ``connection_made`` runs."""

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        try:
            self._client_cn = client_cn(transport.get_extra_info("peercert"))
        except Exception:  # noqa: BLE001 - a name for the log must never cost the connection
            self._client_cn = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope[CLIENT_CN_KEY] = self._client_cn  # type: ignore[literal-required]
