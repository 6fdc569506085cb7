"""``aiinfra serve`` with ``server=http``: load the model, build the app, run uvicorn.

uvicorn (httptools + uvloop) does the HTTP; on SIGTERM it stops accepting, lets in-flight requests
finish (``server.graceful_timeout_s``), then the app's shutdown drains the batcher and flushes the
prediction log, and ``serve`` returns 0.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Any

from aiinfra.errors import AiinfraError

log = logging.getLogger("aiinfra.serving")

SPEC_ENV = "AIINFRA_SERVE_SPEC"
INFERENCE_MODES = ("inline", "thread")


def server_settings(cfg: Any) -> dict[str, Any]:
    """``cfg.server`` as a plain dict with the schema's defaults filled in; checks value ranges."""
    from dataclasses import asdict

    from omegaconf import OmegaConf

    from aiinfra.serving.schema import HttpServerConfig

    given = OmegaConf.to_container(cfg.server, resolve=True) if cfg.get("server") is not None else {}
    s = {**asdict(HttpServerConfig()), **(given or {})}
    for key in ("port", "max_body_bytes", "max_rows", "max_batch_size", "max_queue_rows", "workers"):
        if not isinstance(s[key], int) or s[key] < (0 if key == "port" else 1):
            raise AiinfraError(f"server.{key} must be a positive integer, got {s[key]!r}")
    if s["inference"] not in INFERENCE_MODES:
        raise AiinfraError(f"server.inference must be one of {', '.join(INFERENCE_MODES)}, got {s['inference']!r}")
    if s["max_wait_ms"] < 0 or s["reload_interval_s"] < 0:
        raise AiinfraError("server.max_wait_ms and server.reload_interval_s must be >= 0")
    return s


def prediction_log_dir(cfg: Any, settings: dict[str, Any]) -> str:
    d = settings.get("log_dir") or str(Path(str(cfg.paths.logs)) / "predictions")
    return str(Path(d).resolve())


def feedback_dir(cfg: Any, settings: dict[str, Any]) -> str:
    """Where ``POST /v2/models/{name}/feedback`` stores labels (aiinfra.serving.feedback)."""
    d = settings.get("feedback_dir") or str(Path(str(cfg.paths.logs)) / "feedback")
    return str(Path(d).resolve())


def _configure_torch(threads: int) -> None:
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set in this process
            pass


def build_state(cfg: Any, settings: dict[str, Any]):
    from aiinfra.serving.app import ServingState
    from aiinfra.serving.model_state import default_model_uri, load_served_model, resolve

    _configure_torch(settings["torch_threads"])
    uri = default_model_uri(cfg)
    model = load_served_model(resolve(uri, cfg))
    log_dir = prediction_log_dir(cfg, settings) if settings["prediction_log"] else None
    return ServingState(settings, cfg, model, uri, log_dir)


def build_state_from_spec(spec: str):
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(spec)
    return build_state(cfg, server_settings(cfg))


def serve(cfg: Any) -> int:
    """Run the HTTP server until SIGTERM/SIGINT; returns 0 after a clean drain."""
    import uvicorn

    from aiinfra.serving.auth import KeyStore, check_bind

    settings = server_settings(cfg)
    keys = KeyStore.from_config(settings)  # fail on a malformed key before loading anything
    check_bind(settings["host"], keys, settings["allow_unauthenticated"])
    common = dict(host=settings["host"], port=settings["port"], loop="uvloop", http="httptools",
                  lifespan="on", access_log=False, log_level="warning", server_header=False,
                  timeout_graceful_shutdown=settings["graceful_timeout_s"], backlog=2048)
    if settings["workers"] > 1:
        from omegaconf import OmegaConf

        import shutil
        import tempfile

        from aiinfra.serving.model_state import default_model_uri, load_served_model, resolve

        # pre-flight in the supervisor: a model that cannot load is one clean error here, not workers
        # that uvicorn restarts forever
        load_served_model(resolve(default_model_uri(cfg), cfg))

        # each worker process composes nothing: it gets the validated config as YAML
        os.environ[SPEC_ENV] = OmegaConf.to_yaml(cfg, resolve=True)
        # shared metric files: a scrape of any worker reports all of them
        prom_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="aiinfra-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = prom_dir
        log.info("serving on http://%s:%d with %d worker processes", settings["host"], settings["port"],
                 settings["workers"])
        try:
            uvicorn.run("aiinfra.serving.app:app_from_env", factory=True, workers=settings["workers"], **common)
        finally:
            if prom_dir.startswith(tempfile.gettempdir()) and "aiinfra-metrics-" in prom_dir:
                shutil.rmtree(prom_dir, ignore_errors=True)
        return 0
    from aiinfra.serving.app import build_app

    state = build_state(cfg, settings)
    model = state.holder.current
    log.info("serving %s version %s on http://%s:%d (docs: /docs, metrics: /metrics, log: %s)", model.name,
             model.version, settings["host"], settings["port"],
             state.predlog.dir if state.predlog else "off")
    return run_single_process(build_app(state), settings, common)


def run_single_process(app: Any, settings: dict[str, Any], common: dict[str, Any]) -> int:
    """Run one uvicorn server process for ``app`` until SIGTERM/SIGINT; 0 after a clean drain.
    Shared with plugin servers (aiinfra-onnx) so they stop and report errors the same way."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, **common))
    _quiet_signals()
    server.run()
    if not server.started:
        raise AiinfraError(f"could not start the server on {settings['host']}:{settings['port']} "
                           "(is the port in use?)", hint="pick another one: server.port=8001")
    return 0


def _quiet_signals() -> None:
    # uvicorn re-raises the signal that stopped it once it has shut down; with the default handler
    # that would kill the process with -SIGTERM *after* a clean drain. A no-op handler makes a
    # graceful stop exit 0, as process managers expect.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
