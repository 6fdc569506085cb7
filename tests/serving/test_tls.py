"""HTTPS and mutual TLS (``server.tls``): a CA, server and client certificates made here with
``cryptography``, real ``aiinfra serve`` processes on 127.0.0.1, real TLS handshakes with httpx."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import orjson
import pytest

from aiinfra.config.checks import run_checks
from aiinfra.errors import AiinfraError, ConfigError
from aiinfra.serving.schema import TLSConfig
from aiinfra.serving.tls import client_cn, server_context, uvicorn_tls_options
from serving_helpers import AIINFRA, ServerProcess, env_for

PASSWORD_ENV = "AIINFRA_TEST_TLS_KEY_PASSWORD"
KEY_PASSWORD = "correct horse"


def _pki(root: Path) -> SimpleNamespace:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def builder(subject: str, issuer: x509.Name, key, days: tuple[int, int] = (0, 30)) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=days[0], minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days[1]))
        )

    def ca(cn: str):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            builder(cn, name(cn), key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        return key, cert

    def leaf(ca_key, ca_cert, cn: str, server: bool):
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        b = (
            builder(cn, ca_cert.subject, key)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            b = b.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
            )
        return key, b.sign(ca_key, hashes.SHA256())

    def write_cert(file: str, cert) -> Path:
        (root / file).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return root / file

    def write_key(file: str, key, password: bytes | None = None) -> Path:
        enc = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        (root / file).write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc))
        return root / file

    ca_key, ca_cert = ca("aiinfra test CA")
    server_key, server_cert = leaf(ca_key, ca_cert, "127.0.0.1", server=True)
    client_key, client_cert = leaf(ca_key, ca_cert, "client-1", server=False)
    expired = builder("127.0.0.1", ca_cert.subject, server_key, days=(10, -1)).sign(ca_key, hashes.SHA256())
    other_key, other_cert = ca("another CA")
    intruder_key, intruder_cert = leaf(other_key, other_cert, "intruder", server=False)
    return SimpleNamespace(
        ca=write_cert("ca.pem", ca_cert),
        cert=write_cert("server.pem", server_cert),
        expired=write_cert("expired.pem", expired),
        key=write_key("server.key", server_key),
        key_encrypted=write_key("server-encrypted.key", server_key, KEY_PASSWORD.encode()),
        client_cert=write_cert("client.pem", client_cert),
        client_key=write_key("client.key", client_key),
        other_ca=write_cert("other-ca.pem", other_cert),
        intruder_cert=write_cert("intruder.pem", intruder_cert),
        intruder_key=write_key("intruder.key", intruder_key),
        wrong_key=write_key("wrong.key", ec.generate_private_key(ec.SECP256R1())),
    )


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> SimpleNamespace:
    return _pki(tmp_path_factory.mktemp("pki"))


def client_context(pki, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


class TlsServer(ServerProcess):
    """``aiinfra serve`` with ``server.tls.*``; ready once an HTTPS readiness check (with the
    client certificate, for mutual TLS) answers 200."""

    def __init__(self, project, overrides, ctx: ssl.SSLContext, name: str, env=None):
        super().__init__(project, overrides, env, name)
        self.url = f"https://127.0.0.1:{self.port}"
        self.ctx = self.verify = ctx


def tls_args(pki, mutual: bool = False) -> list[str]:
    args = [f"server.tls.certfile={pki.cert}", f"server.tls.keyfile={pki.key}"]
    return [*args, f"server.tls.client_ca={pki.ca}"] if mutual else args


@pytest.fixture(scope="module")
def https_server(serving_project, model_dir, pki):
    """TLS without client certificates, with two worker processes (each builds its own context),
    and a password-protected key whose password comes from the environment."""
    srv = TlsServer(
        serving_project,
        [
            f"server.model_uri={model_dir}",
            "server.workers=2",
            "server.reload_interval_s=0",
            f"server.tls.certfile={pki.cert}",
            f"server.tls.keyfile={pki.key_encrypted}",
            f"server.tls.keyfile_password_env={PASSWORD_ENV}",
        ],
        client_context(pki),
        name="https",
        env={PASSWORD_ENV: KEY_PASSWORD},
    ).start()
    yield srv
    assert srv.stop() == 0, srv.text()


@pytest.fixture(scope="module")
def mtls_server(serving_project, model_dir, pki, tmp_path_factory):
    access = tmp_path_factory.mktemp("mtls") / "access.jsonl"
    srv = TlsServer(
        serving_project,
        # every address, without API keys: mutual TLS authenticates the clients, so the bind is allowed
        [f"server.model_uri={model_dir}", f"server.access_log={access}", "server.host=0.0.0.0", *tls_args(pki, True)],
        client_context(pki, pki.client_cert, pki.client_key),
        name="mtls",
    ).start()
    srv.access = access
    yield srv
    assert srv.stop() == 0, srv.text()


ROWS = {"inputs": [{"name": n, "shape": [1], "datatype": "FP32", "data": [0.5]} for n in "abcd"]}


def test_https_with_the_ca_trusted_serves_predictions(https_server, pki):
    with httpx.Client(base_url=https_server.url, verify=client_context(pki)) as client:
        assert client.get("/v2/health/ready").status_code == 200
        resp = client.post("/v2/models/model/infer", json=ROWS)
        assert resp.status_code == 200, resp.text
        assert resp.json()["outputs"]
    out = https_server.text()
    assert f"on https://127.0.0.1:{https_server.port}, mutual TLS off with 2 worker processes" in out
    assert KEY_PASSWORD not in out


def test_plain_http_and_an_untrusted_client_fail_on_the_tls_port(https_server):
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{https_server.port}/v2/health/ready", timeout=5)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):  # the system CAs do not know ours
        httpx.get(f"{https_server.url}/v2/health/ready", timeout=5)


def _refused(url: str, ctx: ssl.SSLContext) -> None:
    """The handshake (or, with TLS 1.3, the first read after it) fails: no HTTP response at all."""
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/v2/health/ready", verify=ctx, timeout=5)


def test_mutual_tls_refuses_clients_without_the_right_certificate(mtls_server, pki):
    _refused(mtls_server.url, client_context(pki))  # no certificate
    _refused(mtls_server.url, client_context(pki, pki.intruder_cert, pki.intruder_key))  # another CA's
    good = client_context(pki, pki.client_cert, pki.client_key)
    with httpx.Client(base_url=mtls_server.url, verify=good) as client:
        resp = client.post("/v2/models/model/infer", json=ROWS)
        assert resp.status_code == 200, resp.text
    assert f"on https://0.0.0.0:{mtls_server.port}, mutual TLS on: clients need a certificate signed by {pki.ca}" in (
        mtls_server.text()
    )
    assert mtls_server.proc.poll() is None  # refused handshakes cost the server nothing but a log line


def test_the_access_log_names_the_client_certificate(mtls_server, pki):
    good = client_context(pki, pki.client_cert, pki.client_key)
    assert httpx.get(f"{mtls_server.url}/v2/health/live", verify=good, timeout=5).status_code == 200
    deadline = time.monotonic() + 10
    records = []
    while time.monotonic() < deadline:  # the access log is flushed every second
        if mtls_server.access.exists():
            records = [orjson.loads(line) for line in mtls_server.access.read_bytes().splitlines()]
            if any(r["path"] == "/v2/health/live" for r in records):
                break
        time.sleep(0.2)
    live = [r for r in records if r["path"] == "/v2/health/live"]
    assert live and all(r["client_cn"] == "client-1" for r in live), records


@pytest.mark.parametrize("which", ["wrong key", "missing file"])
def test_a_bad_tls_file_is_one_error_and_exit_2(serving_project, model_dir, pki, tmp_path, which):
    key = pki.wrong_key if which == "wrong key" else tmp_path / "nowhere.key"
    proc = subprocess.run(
        [
            *AIINFRA,
            "serve",
            f"server.model_uri={model_dir}",
            f"server.tls.certfile={pki.cert}",
            f"server.tls.keyfile={key}",
        ],
        cwd=serving_project,
        env=env_for(serving_project),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("aiinfra: error:")]
    assert len(errors) == 1 and str(key) in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert "serving" not in proc.stderr  # refused before the model loaded
    if which == "wrong key":
        assert "is not the private key of the certificate" in errors[0]
    else:
        assert "no such file" in errors[0]


def _tls(pki, **kw) -> TLSConfig:
    return TLSConfig(**{"certfile": str(pki.cert), "keyfile": str(pki.key), **kw})


def _error(pki, **kw) -> str:
    with pytest.raises(AiinfraError) as info:
        server_context(_tls(pki, **kw))
    return str(info.value)


def test_an_encrypted_key_needs_its_password_from_the_environment(pki, monkeypatch):
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    encrypted = str(pki.key_encrypted)
    assert "is encrypted and no password is configured" in _error(pki, keyfile=encrypted)
    msg = _error(pki, keyfile=encrypted, keyfile_password_env=PASSWORD_ENV)
    assert msg.startswith("server.tls.keyfile_password_env:") and f"{PASSWORD_ENV} is not set" in msg
    monkeypatch.setenv(PASSWORD_ENV, "battery staple")
    msg = _error(pki, keyfile=encrypted, keyfile_password_env=PASSWORD_ENV)
    assert f"the password in {PASSWORD_ENV} does not decrypt" in msg and "battery staple" not in msg
    monkeypatch.setenv(PASSWORD_ENV, KEY_PASSWORD)
    ctx = server_context(_tls(pki, keyfile=encrypted, keyfile_password_env=PASSWORD_ENV))
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    options = uvicorn_tls_options(_tls(pki, keyfile=encrypted, keyfile_password_env=PASSWORD_ENV))
    assert options["ssl_keyfile_password"] == KEY_PASSWORD and "ssl_cert_reqs" not in options


def test_files_that_are_not_what_they_should_be(pki, tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    assert _error(pki, certfile=str(junk)).startswith(f"server.tls.certfile: {junk} holds no PEM certificate")
    assert _error(pki, keyfile=str(pki.cert)).startswith(f"server.tls.keyfile: {pki.cert} holds no PEM private key")
    assert _error(pki, client_ca=str(junk)).startswith(f"server.tls.client_ca: {junk} holds no readable PEM")
    # a client certificate is not a CA: it cannot verify anyone
    assert "holds no CA certificate" in _error(pki, client_ca=str(pki.client_cert))
    assert "not a file" in _error(pki, client_ca=str(tmp_path))
    assert _error(pki, certfile=str(pki.expired)).startswith(f"server.tls.certfile: {pki.expired} expired on ")
    ctx = server_context(_tls(pki, client_ca=str(pki.ca)))
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    options = uvicorn_tls_options(_tls(pki, client_ca=str(pki.ca)))
    assert options["ssl_cert_reqs"] == ssl.CERT_REQUIRED and options["http"].endswith(":ClientCertProtocol")
    assert uvicorn_tls_options(TLSConfig()) == {}


def test_tls_rules_of_the_schema():
    from aiinfra.serving.ray_schema import RayServerConfig

    with pytest.raises(ConfigError, match="server.tls: is not supported with server=ray"):
        run_checks(RayServerConfig(tls=TLSConfig(certfile="s.pem", keyfile="s.key")), "server")
    with pytest.raises(ConfigError, match="server.tls.keyfile_password_env: is the password of server.tls.keyfile"):
        run_checks(TLSConfig(keyfile_password_env="X"), "server.tls")


def test_client_cn_reads_the_subject_of_a_peer_certificate():
    assert client_cn({"subject": ((("organizationName", "acme"),), (("commonName", "svc-a"),))}) == "svc-a"
    assert client_cn(None) is None and client_cn({"subject": ()}) is None
