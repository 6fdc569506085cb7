"""``aiinfra serve`` with ``server=http`` (and any server built on it, e.g. ``server=onnx``): load
the model with the configured runtime, build the app, run uvicorn.

uvicorn (httptools + uvloop) does the HTTP; on SIGTERM readiness answers 503 at once
(``aiinfra.serving.guard``), requests are served ``server.shutdown_delay_s`` more, stalled body
reads are answered 503, then uvicorn stops accepting, lets in-flight requests finish
(``server.graceful_timeout_s``), the app's shutdown drains the batcher and flushes the prediction
log, and ``serve`` returns 0.

With ``server.workers > 1`` uvicorn's supervisor starts that many processes; each one rebuilds the
typed config from YAML (:data:`SPEC_ENV`) and loads the model itself, and all of them share one
Prometheus multiprocess directory, so a scrape of any worker reports all of them.

``server.tls`` (``aiinfra.serving.tls``): HTTPS, and with ``client_ca`` mutual TLS, for one process
and for every worker; the files are checked before the model loads.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
from typing import Any

import uvicorn
from omegaconf import OmegaConf

from aiinfra.config.typed import to_yaml
from aiinfra.config.validate import validate
from aiinfra.errors import AiinfraError
from aiinfra.plugins.manager import get_plugins
from aiinfra.runner import LOG_FORMAT
from aiinfra.serving.app import build_app
from aiinfra.serving.auth import KeyStore, check_bind
from aiinfra.serving.privacy import LogPrivacy
from aiinfra.serving.runtime import ModelLoader
from aiinfra.serving.state import ServingState
from aiinfra.serving.tls import describe, uvicorn_tls_options

log = logging.getLogger("aiinfra.serving")

#: the validated config as YAML, for the worker processes of ``server.workers > 1``
SPEC_ENV = "AIINFRA_SERVE_SPEC"
PROMETHEUS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def build_state(cfg: Any) -> ServingState:
    """The model loaded with ``server.runtime`` and everything the handlers share."""
    loader = ModelLoader(cfg)
    return ServingState(cfg, loader, loader())


def worker_app() -> Any:
    """uvicorn factory for ``server.workers > 1``: each worker process loads the model itself."""
    # a spawned worker starts with Python's default logging: give it the CLI's format, so its
    # startup and shutdown lines (prediction-log flush) reach the operator
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, datefmt="%H:%M:%S")
    cfg = validate(OmegaConf.create(os.environ[SPEC_ENV]), get_plugins().registry)
    return build_app(build_state(cfg))


def _uvicorn_options(server_cfg: Any, tls_options: dict[str, Any] | None = None) -> dict[str, Any]:
    options = dict(
        host=server_cfg.host,
        port=server_cfg.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        timeout_graceful_shutdown=server_cfg.graceful_timeout_s,
        limit_concurrency=server_cfg.max_connections,  # open connections (and tasks); beyond: 503
        backlog=2048,
    )
    options.update(tls_options or {})  # ssl_* (and, with mutual TLS, the protocol that names the client)
    return options


def serve(cfg: Any) -> int:
    """Run the HTTP server until SIGTERM/SIGINT; returns 0 after a clean drain."""
    s = cfg.server
    keys = KeyStore.from_config(s)  # fail on a malformed key before loading anything
    # mutual TLS authenticates every client (a certificate the CA signed): enough to leave loopback;
    # admin endpoints still need an admin API key
    check_bind(s.host, keys, s.allow_unauthenticated or bool(s.tls.client_ca))
    tls = uvicorn_tls_options(s.tls)  # every TLS file checked before the model loads
    if s.workers > 1:
        return _serve_workers(cfg, tls)
    state = build_state(cfg)
    model = state.holder.current
    log.info(
        "serving %s version %s (runtime %s) on %s://%s:%d%s (docs: /docs, metrics: /metrics, log: %s)",
        model.name,
        model.version,
        s.runtime,
        "https" if tls else "http",
        s.host,
        s.port,
        describe(s.tls),
        state.predlog.dir if state.predlog else "off",
    )
    return run_single_process(build_app(state), s, tls)


def _serve_workers(cfg: Any, tls: dict[str, Any]) -> int:
    s = cfg.server
    # pre-flight in the supervisor: a model that cannot load is one clean error here, not workers
    # that uvicorn restarts forever. It also leaves what a runtime derives from a local model
    # directory in place (e.g. onnx's model.onnx), so the workers do not all build it at once.
    model = ModelLoader(cfg)()
    # the log keys too: a missing key is one error here, not every worker failing at its start
    LogPrivacy.from_config(s, model.features)
    os.environ[SPEC_ENV] = to_yaml(cfg)
    # shared metric files, for every runtime: a scrape of any worker reports all of them
    given = os.environ.get(PROMETHEUS_DIR_ENV)
    prom_dir = given or tempfile.mkdtemp(prefix="aiinfra-metrics-")
    os.environ[PROMETHEUS_DIR_ENV] = prom_dir
    log.info(
        "serving on %s://%s:%d%s with %d worker processes (runtime %s)",
        "https" if tls else "http",
        s.host,
        s.port,
        describe(s.tls),
        s.workers,
        s.runtime,
    )
    try:
        uvicorn.run(f"{__name__}:worker_app", factory=True, workers=s.workers, **_uvicorn_options(s, tls))
    finally:
        if not given:  # ours: a directory the operator named is theirs to keep
            shutil.rmtree(prom_dir, ignore_errors=True)
    return 0


def run_single_process(app: Any, server_cfg: Any, tls: dict[str, Any] | None = None) -> int:
    """Run one uvicorn server process for ``app`` until SIGTERM/SIGINT; 0 after a clean drain.
    ``tls``: :func:`aiinfra.serving.tls.uvicorn_tls_options` of ``server_cfg.tls`` (checked)."""
    server = uvicorn.Server(uvicorn.Config(app, **_uvicorn_options(server_cfg, tls)))
    _quiet_signals()
    server.run()
    if not server.started:
        raise AiinfraError(
            f"could not start the server on {server_cfg.host}:{server_cfg.port} (is the port in use?)",
            hint="pick another one: server.port=8001",
        )
    return 0


def _quiet_signals() -> None:
    # uvicorn re-raises the signal that stopped it once it has shut down; with the default handler
    # that would kill the process with -SIGTERM *after* a clean drain. A no-op handler makes a
    # graceful stop exit 0, as process managers expect.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
