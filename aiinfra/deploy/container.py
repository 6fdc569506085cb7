"""What every target's container shares, derived from the composed config, and the render-time
checks that compare the deploy settings with the server's own (port, route table, keys).

The container runs ``aiinfra serve --params /app/params.yaml``: the same validated config as the
local server, with ``server.host=0.0.0.0`` and the model where the image keeps it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from aiinfra.errors import ConfigError

#: where the image keeps the project (conf/, params.yaml), the model and the venv
APP_DIR = "/app"
MODEL_DIR = "/app/model"
VENV_DIR = "/opt/venv"
PARAMS = "/app/params.yaml"


@dataclass(frozen=True)
class Container:
    port: int
    command: list[str]  # replaces the image's ENTRYPOINT (the same command, with the overrides)
    args: list[str]
    env: list[dict[str, Any]]
    liveness_path: str
    readiness_path: str
    grace_s: int  # terminationGracePeriodSeconds
    needs_keys: bool


def http_server(cfg: Any, target: str) -> Any:
    """``cfg.server`` if it is an HTTP server (http, onnx, ray, ...); else a ConfigError."""
    from aiinfra.serving.schema import HttpServerConfig

    if not isinstance(cfg.server, HttpServerConfig):
        raise ConfigError(
            f"deploy.type={target} deploys an HTTP server, but server={cfg.server.type} is not one",
            hint="use server=http (or a server built on it, e.g. server=onnx)",
        )
    return cfg.server


def check_port(cfg: Any, d: Any) -> int:
    port = int(cfg.server.port)
    if d.port is not None and int(d.port) != port:
        raise ConfigError(
            f"deploy.port: {d.port} is not the server's port: the server listens on server.port={port}",
            hint=f"set server.port={d.port} (the container listens there) or drop deploy.port",
        )
    if port == 0:
        raise ConfigError("server.port: 0 (any free port) cannot be deployed", hint="set server.port=8080")
    return port


def check_probe_path(key: str, path: str) -> str:
    """A probe path must be a public GET route of the server (probes send no API key)."""
    from aiinfra.serving.routes import ENDPOINTS, Access, Matcher

    found = Matcher(ENDPOINTS).match(path)
    public = sorted(e.path for e in ENDPOINTS if e.access is Access.public and "GET" in e.methods)
    if found is None:
        raise ConfigError(
            f"{key}: {path!r} is not a route of the server, so this probe would never pass",
            hint=f"use one of {', '.join(public)} (readiness: /v2/health/ready)",
        )
    endpoint = found[0]
    if "GET" not in endpoint.methods:
        raise ConfigError(f"{key}: {path!r} does not answer GET", hint="use /v2/health/live or /v2/health/ready")
    if endpoint.access is not Access.public:
        raise ConfigError(
            f"{key}: {path!r} needs an API key ({endpoint.access.value}) and probes send none: it would answer 401",
            hint=f"use a public route: {', '.join(public)}",
        )
    return path


def needs_api_keys(server: Any) -> bool:
    """The container binds 0.0.0.0: the server refuses to start there without keys unless allowed."""
    return not server.allow_unauthenticated


def keys_env(cfg: Any, d: Any) -> list[dict[str, Any]]:
    server = cfg.server
    if not needs_api_keys(server):
        return []
    secret = d.api_keys_secret
    if not secret.name:
        raise ConfigError(
            "deploy.api_keys_secret.name: missing: the server listens on 0.0.0.0 in the container and "
            "refuses to start without API keys",
            hint="name the Secret holding the keys (deploy.api_keys_secret.name=aiinfra-api-keys; create it "
            "with kubectl create secret generic aiinfra-api-keys --from-literal=api-keys='<id>:predict:<secret>'), "
            "or serve without keys: server.allow_unauthenticated=true",
        )
    if not server.api_keys_env:
        raise ConfigError(
            "server.api_keys_env: empty, so the Secret cannot reach the server",
            hint="server.api_keys_env=AIINFRA_API_KEYS",
        )
    return [
        {
            "name": str(server.api_keys_env),
            "valueFrom": {"secretKeyRef": {"name": str(secret.name), "key": str(secret.key)}},
        }
    ]


def grace_seconds(server: Any, prestop_s: int) -> int:
    """terminationGracePeriodSeconds: the preStop sleep, the server's drain, and 5 s to flush the log."""
    return int(math.ceil(prestop_s + float(server.graceful_timeout_s) + 5))


def check_no_tls(server: Any) -> None:
    """The rendered pods get no certificate files, and their httpGet probes and Prometheus scrape
    speak plain HTTP: a server with ``server.tls`` would never become ready. Refused at render time
    rather than written as manifests that fail in the cluster."""
    tls = getattr(server, "tls", None)
    if tls is not None and tls.enabled:
        raise ConfigError(
            f"server.tls.certfile={tls.certfile!r}: `aiinfra deploy` mounts no certificates, and its "
            "HTTP probes and metrics scrape would fail against an HTTPS server",
            hint="terminate TLS at the Ingress, the service mesh or the KServe gateway, and deploy with "
            "server.tls.certfile=null server.tls.keyfile=null (docs/tls.md)",
        )


def container(cfg: Any, d: Any, target: str, *, prestop_s: int = 0) -> Container:
    server = http_server(cfg, target)
    check_no_tls(server)
    port = check_port(cfg, d)
    probes = getattr(d, "probes", None)
    live = check_probe_path("deploy.probes.liveness_path", probes.liveness_path if probes else "/v2/health/live")
    ready = check_probe_path("deploy.probes.readiness_path", probes.readiness_path if probes else "/v2/health/ready")
    env = [
        {"name": "AIINFRA_PROJECT_DIR", "value": APP_DIR},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        *keys_env(cfg, d),
    ]
    if str(cfg.tracking.uri).startswith(("http://", "https://")):
        env.append({"name": "MLFLOW_TRACKING_URI", "value": str(cfg.tracking.uri)})
    args = ["serve", "--params", PARAMS, *[str(o) for o in d.server_overrides]]
    return Container(
        port=port,
        command=["aiinfra"],
        args=args,
        env=env,
        liveness_path=live,
        readiness_path=ready,
        grace_s=grace_seconds(server, prestop_s),
        needs_keys=needs_api_keys(server),
    )


def labels(d: Any) -> dict[str, str]:
    return {"app.kubernetes.io/name": str(d.name), "app.kubernetes.io/part-of": "aiinfra"}


def prometheus_annotations(port: int) -> dict[str, str]:
    return {"prometheus.io/scrape": "true", "prometheus.io/port": str(port), "prometheus.io/path": "/metrics"}
