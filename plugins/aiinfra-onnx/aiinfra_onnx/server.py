"""``aiinfra serve server=onnx``: the built-in HTTP server's app, its model on onnxruntime.

Everything on the wire (Open Inference Protocol, /invocations, health, metrics, auth, prediction
log, batching, reload) is aiinfra's own serving app: only the model object differs. So a client of
``server=http`` works unchanged against ``server=onnx``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from aiinfra.errors import AiinfraError

log = logging.getLogger("aiinfra.onnx")

SPEC_ENV = "AIINFRA_ONNX_SERVE_SPEC"


def _use_onnx_loader(settings: dict[str, Any]) -> None:
    # The built-in hot reload loads the new version with model_state.load_served_model. This
    # process serves only ONNX models, so that loader is replaced here, for this process only.
    from aiinfra.serving import model_state

    from aiinfra_onnx.runtime import as_served_model

    def load(resolved: Any) -> Any:
        return as_served_model(resolved, settings.get("onnx_path"), int(settings.get("ort_threads", 1)))

    model_state.load_served_model = load


def build_state(cfg: Any, settings: dict[str, Any]) -> Any:
    from aiinfra.serving.app import ServingState
    from aiinfra.serving.model_state import default_model_uri, resolve
    from aiinfra.serving.server import prediction_log_dir

    from aiinfra_onnx.runtime import as_served_model

    _use_onnx_loader(settings)
    uri = default_model_uri(cfg)
    model = as_served_model(resolve(uri, cfg), settings.get("onnx_path"), int(settings.get("ort_threads", 1)))
    log_dir = prediction_log_dir(cfg, settings) if settings["prediction_log"] else None
    return ServingState(settings, cfg, model, uri, log_dir)


def app_from_env() -> Any:
    """uvicorn factory for ``server.workers > 1``: each worker loads the ONNX model itself."""
    from omegaconf import OmegaConf

    from aiinfra.serving.app import build_app
    from aiinfra.serving.server import server_settings

    cfg = OmegaConf.create(os.environ[SPEC_ENV])
    return build_app(build_state(cfg, server_settings(cfg)))


def serve(cfg: Any) -> int:
    import uvicorn

    from aiinfra.serving.app import build_app
    from aiinfra.serving.auth import KeyStore, check_bind
    from aiinfra.serving.server import run_single_process, server_settings

    settings = server_settings(cfg)
    if int(settings.get("ort_threads", 1)) < 0:
        raise AiinfraError(f"server.ort_threads must be >= 0, got {settings['ort_threads']}")
    keys = KeyStore.from_config(settings)
    check_bind(settings["host"], keys, settings["allow_unauthenticated"])
    common = dict(host=settings["host"], port=settings["port"], loop="uvloop", http="httptools",
                  lifespan="on", access_log=False, log_level="warning", server_header=False,
                  timeout_graceful_shutdown=settings["graceful_timeout_s"], backlog=2048)
    if settings["workers"] > 1:
        from omegaconf import OmegaConf

        from aiinfra.serving.model_state import default_model_uri, resolve
        from aiinfra.tracking.mlflow_setup import remove_download

        from aiinfra_onnx.runtime import ensure_onnx

        # A local model directory is exported once here, not in every worker at the same time.
        # A registry model is downloaded (and exported) by each worker into its own temporary
        # copy, so here it is only checked to resolve, and its download deleted.
        resolved = resolve(default_model_uri(cfg), cfg)
        try:
            if getattr(resolved, "download_dir", None) is None:
                ensure_onnx(resolved.path, settings.get("onnx_path"))
        finally:
            remove_download(resolved)
        os.environ[SPEC_ENV] = OmegaConf.to_yaml(cfg, resolve=True)
        uvicorn.run("aiinfra_onnx.server:app_from_env", factory=True, workers=settings["workers"], **common)
        return 0
    state = build_state(cfg, settings)
    model = state.holder.current
    log.info("serving %s version %s on onnxruntime (%s) at http://%s:%d", model.name, model.version,
             model.predictor.path, settings["host"], settings["port"])
    return run_single_process(build_app(state), settings, common)
