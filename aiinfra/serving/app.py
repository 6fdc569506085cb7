"""The ASGI application: routes, auth, metrics and the access log around the batcher and the log.

Built for speed on a small machine: one pure-ASGI wrapper (:class:`Gate`; no BaseHTTPMiddleware,
which costs a task per request) that serves the prediction routes itself (``predict.py``) and hands
everything else to plain Starlette routes; orjson, no pandas, inline compute for tiny models. Every response names the model version that produced it (``X-Model-Version`` header and,
for predictions, the body).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import sys
import time
from typing import Any

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from aiinfra.serving import predict, protocol
from aiinfra.serving.auth import KeyStore, secret_from_headers
from aiinfra.serving.batching import Batcher
from aiinfra.serving.metrics import ServerMetrics

log = logging.getLogger("aiinfra.serving")


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status,
                    media_type="application/json", headers=headers)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": message}, status, headers)


class AccessLog:
    """JSON lines, buffered; flushed every second and at shutdown (not a syscall per request)."""

    def __init__(self, target: str | None):
        self.stream = None
        if not target:
            return
        if target == "-":
            # our own buffer on fd 2: sys.stderr.buffer hands every line to the kernel at once
            # (measured: a write syscall per request, ~5% of the throughput)
            sys.stderr.flush()
            self.stream = open(sys.stderr.fileno(), "ab", buffering=256 * 1024, closefd=False)  # noqa: SIM115
        else:
            os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
            self.stream = open(target, "ab", buffering=256 * 1024)  # noqa: SIM115 (closed at shutdown)

    def write(self, record: dict[str, Any]) -> None:
        if self.stream is not None:
            self.stream.write(orjson.dumps(record) + b"\n")

    def flush(self) -> None:
        if self.stream is not None:
            try:
                self.stream.flush()
            except (OSError, ValueError):
                pass

    def close(self) -> None:
        self.flush()
        if self.stream is not None:
            self.stream.close()  # fd 2 itself stays open (closefd=False)


class ServingState:
    """Everything the handlers share; one per process."""

    def __init__(self, settings: dict[str, Any], cfg: Any, model: Any, uri: str, log_dir: str | None):
        from aiinfra.serving.reload import ModelHolder

        self.settings = settings
        self.metrics = ServerMetrics()
        report_dir = cfg.get("monitor", {}).get("report_dir") if hasattr(cfg, "get") else None
        self.metrics.publish_drift(os.path.join(str(report_dir), "drift.prom") if report_dir else None)
        self.holder = ModelHolder(cfg, uri, model, self.metrics)
        self.metrics.set_model(model.name, model.version, model.uri)
        self.keys = KeyStore.from_config(settings)
        self.predlog = None
        if settings["prediction_log"] and log_dir:
            from aiinfra.serving.predlog import PredictionLog

            self.predlog = PredictionLog(log_dir, model.features, flush_rows=settings["log_flush_rows"],
                                         flush_interval_s=settings["log_flush_interval_s"],
                                         on_written=self.metrics.log_written.inc,
                                         on_error=self.metrics.log_errors.inc,
                                         on_dropped=self.metrics.log_dropped.inc)
        self.batcher = Batcher(self.holder.get, max_batch_size=settings["max_batch_size"],
                               max_wait_ms=settings["max_wait_ms"], max_queue_rows=settings["max_queue_rows"],
                               inference=settings["inference"], on_batch=self.metrics.observe_batch,
                               on_delivered=self._log_batch if self.predlog is not None else None)
        self.metrics.track(lambda: self.batcher.pending_rows,
                           lambda: self.predlog.pending_rows if self.predlog else 0)
        from aiinfra.serving.feedback import FeedbackStore
        from aiinfra.serving.server import feedback_dir

        self.feedback = FeedbackStore(feedback_dir(cfg, settings))
        self.access = AccessLog(settings.get("access_log"))
        self.ready = True
        self.tasks: list[asyncio.Task] = []
        self._rid_prefix = os.urandom(4).hex()
        self._rid = 0
        self.spec_cache: dict[str, bytes] = {}

    def _log_batch(self, model: Any, request_ids: list[str], counts: list[int], x: np.ndarray,
                   proba: np.ndarray, index: np.ndarray) -> None:
        """One prediction-log append per forward pass (the batcher calls it for the answered rows)."""
        scores = proba[np.arange(proba.shape[0]), index]
        self.predlog.append(request_ids, model.name, model.version, x, model.classes[index], scores,
                            model.features, counts)

    def request_id(self, given: str | None) -> str:
        if protocol.usable_request_id(given):
            return given
        self._rid += 1
        return f"{self._rid_prefix}-{self._rid:x}"


# --------------------------------------------------------------------------------------------
# the pure-ASGI wrapper: auth, metrics, access log


def _role_for(path: str, settings: dict[str, Any]) -> str | None:
    if path.startswith("/v2/models") or path == "/invocations":
        return "predict"
    if path.startswith("/admin"):
        return "admin"
    if path == "/metrics" and not settings["metrics_public"]:
        return "predict"
    return None


class Gate:
    def __init__(self, app: Any, state: ServingState):
        self.app = app
        self.starlette = app
        self.state = state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        st = self.state
        t0 = time.perf_counter()
        path = scope["path"]
        status_box = [500]
        model = st.holder.current
        version_header = (b"x-model-version", model.version.encode())

        async def send_wrapped(message) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
                headers = list(message.get("headers", []))
                if not any(h[0] == b"x-model-version" for h in headers):
                    headers.append(version_header)
                message = {**message, "headers": headers}
            await send(message)

        key_id = None
        role = _role_for(path, st.settings) if st.keys.enabled else None
        if role is not None:
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
                       if k in (b"authorization", b"x-api-key")}
            key = st.keys.identify(secret_from_headers(headers))
            if key is None:
                resp = error(401, "missing or invalid API key: send 'Authorization: Bearer <key>' or 'X-API-Key'",
                             {"WWW-Authenticate": "Bearer"})
            elif role not in key.roles:
                key_id = key.id
                resp = error(403, f"API key '{key.id}' lacks the '{role}' role needed for {path}")
            else:
                key_id = key.id
                resp = None
            if resp is not None:
                await resp(scope, receive, send_wrapped)
                self._observe(scope, path, status_box[0], t0, key_id)
                return
        elif not st.keys.enabled and path.startswith("/admin"):
            # No keys configured: admin endpoints change the server, so they need a credential even
            # from this machine (behind a reverse proxy every client looks local). The model is
            # still followed by polling (server.reload_interval_s).
            resp = error(403, "admin endpoints need an admin API key, and none is configured: set "
                              f"{st.settings.get('api_keys_env') or 'AIINFRA_API_KEYS'}='<id>:admin:<secret>' "
                              "(or server.api_keys_file) and restart the server")
            await resp(scope, receive, send_wrapped)
            self._observe(scope, path, status_box[0], t0, None)
            return
        scope["aiinfra.key_id"] = key_id
        try:
            fast = predict.route(path) if scope["method"] == "POST" else None
            if fast is not None:
                # the hot path: plain ASGI, no Starlette router or Request/Response objects
                kind, scope["aiinfra.route"], params = fast
                status, ctype, body, headers = await predict.handle(st, kind, params, scope, receive)
                status_box[0] = status
                await predict.respond(send, status, ctype, body, headers)
            else:
                await self.app(scope, receive, send_wrapped)
        finally:
            self._observe(scope, path, status_box[0], t0, key_id)

    def _observe(self, scope, path: str, status: int, t0: float, key_id: str | None) -> None:
        st = self.state
        elapsed = time.perf_counter() - t0
        template = scope.get("aiinfra.route")
        if template is None:
            route = scope.get("route")
            template = route.path if route is not None and hasattr(route, "path") else "other"
        st.metrics.observe_request(template, scope["method"], status, elapsed)
        if st.access.stream is not None:
            client = scope.get("client")
            st.access.write({
                "ts": time.time(), "method": scope["method"], "path": path, "status": status,
                "duration_s": round(elapsed, 6), "request_id": scope.get("aiinfra.request_id"),
                "key_id": key_id, "rows": scope.get("aiinfra.rows"),
                "model_version": scope.get("aiinfra.model_version"),
                "client": client[0] if client else None,
            })


# --------------------------------------------------------------------------------------------
# handlers


def _model_headers(model: Any, request_id: str | None = None) -> dict[str, str]:
    h = {"X-Model-Name": model.name, "X-Model-Version": model.version}
    if request_id:
        h["X-Request-ID"] = request_id
    return h


def _check_name(request: Request, model: Any) -> Response | None:
    wrong = predict.unknown_model(model, request.path_params["name"], request.path_params.get("version"))
    return error(404, wrong, _model_headers(model)) if wrong else None


async def predict_endpoint(request: Request) -> Response:
    """Starlette adapter of the prediction routes (the Gate serves them directly; this keeps the
    routes in the table for 405s and for anyone mounting the app without the Gate)."""
    st: ServingState = request.app.state.serving
    kind, _, params = predict.route(request.url.path)
    status, ctype, body, headers = await predict.handle(st, kind, params, request.scope, request.receive)
    return Response(body, status, {k.decode(): v.decode() for k, v in headers}, ctype.decode())


async def live(request: Request) -> Response:
    return json_response({"live": True})


async def ready(request: Request) -> Response:
    st: ServingState = request.app.state.serving
    model = st.holder.current
    if not st.ready:
        return json_response({"ready": False, "reason": "shutting down"}, 503)
    return json_response({"ready": True, "model_name": model.name, "model_version": model.version},
                         headers=_model_headers(model))


async def server_metadata(request: Request) -> Response:
    from aiinfra import __version__

    return json_response({"name": "aiinfra", "version": __version__, "extensions": ["binary_tensor_data"]})


async def model_metadata(request: Request) -> Response:
    model = request.app.state.serving.holder.current
    return _check_name(request, model) or json_response(protocol.v2_metadata(model), headers=_model_headers(model))


async def model_ready(request: Request) -> Response:
    st: ServingState = request.app.state.serving
    model = st.holder.current
    bad = _check_name(request, model)
    if bad is not None:
        return bad
    return json_response({"name": model.name, "ready": st.ready}, 200 if st.ready else 503,
                         headers=_model_headers(model))


async def ping(request: Request) -> Response:
    return Response(b"\n", media_type="application/json")


async def metrics(request: Request) -> Response:
    st: ServingState = request.app.state.serving
    return Response(st.metrics.render(), media_type=st.metrics.content_type)


async def openapi_json(request: Request) -> Response:
    from aiinfra import __version__
    from aiinfra.serving.openapi import build_spec

    st: ServingState = request.app.state.serving
    model = st.holder.current
    key = model.version
    if key not in st.spec_cache:
        st.spec_cache = {key: orjson.dumps(build_spec(model, __version__, st.keys.enabled))}
    return Response(st.spec_cache[key], media_type="application/json")


async def docs(request: Request) -> Response:
    from aiinfra import __version__
    from aiinfra.serving.openapi import build_spec, docs_page

    st: ServingState = request.app.state.serving
    model = st.holder.current
    example = {"url": f"{str(request.base_url).rstrip('/')}/v2/models/{model.name}/infer",
               "body": {"inputs": [{"name": protocol.INPUT_NAME, "shape": [1, model.n_features], "datatype": "FP32",
                                    "data": [0.0] * model.n_features}]}}
    return HTMLResponse(docs_page(build_spec(model, __version__, st.keys.enabled), example))


async def feedback_endpoint(request: Request) -> Response:
    """Labels for earlier predictions, by request id (aiinfra.serving.feedback)."""
    from aiinfra.serving import feedback

    st: ServingState = request.app.state.serving
    model = st.holder.current
    bad = _check_name(request, model)
    if bad is not None:
        return bad
    target = feedback.target_of(model)
    try:
        body = await predict.read_body(request.receive, request.headers.get("content-length"),
                                       st.settings["max_body_bytes"])
        ids, labels = feedback.parse(body, model.classes, target, st.settings["max_rows"])
    except protocol.RequestError as exc:
        return error(exc.status, exc.message, _model_headers(model))
    await asyncio.to_thread(st.feedback.write, ids, labels, target, model.name, model.version)
    st.metrics.feedback.inc(len(ids))
    return json_response({"accepted": len(ids), "model_name": model.name, "model_version": model.version},
                         headers=_model_headers(model))


async def admin_reload(request: Request) -> Response:
    st: ServingState = request.app.state.serving
    result = await st.holder.check(force=request.query_params.get("force") in ("1", "true"))
    return json_response(result, 200 if "error" not in result else 502, headers=_model_headers(st.holder.current))


async def admin_config(request: Request) -> Response:
    st: ServingState = request.app.state.serving
    model = st.holder.current
    return json_response({"server": st.settings, "model": {
        "name": model.name, "version": model.version, "uri": st.holder.uri, "path": str(model.path),
        "run_id": model.run_id, "features": model.features, "classes": model.classes.tolist()},
        "auth": {"enabled": st.keys.enabled, "key_ids": [k.id for k in st.keys.keys]},
        "reload": {"last_check": st.holder.last_check, "last_error": st.holder.last_error}})


async def http_error(request: Request, exc: HTTPException) -> Response:
    messages = {404: f"no such endpoint: {request.method} {request.url.path} (see /docs)",
                405: f"method {request.method} not allowed on {request.url.path}"}
    return error(exc.status_code, messages.get(exc.status_code, str(exc.detail)), getattr(exc, "headers", None))


async def server_error(request: Request, exc: Exception) -> Response:
    log.exception("internal error on %s %s", request.method, request.url.path)
    return error(500, f"internal server error ({type(exc).__name__}); see the server log")


ROUTES = [
    Route("/v2/models/{name}/infer", predict_endpoint, methods=["POST"]),
    Route("/invocations", predict_endpoint, methods=["POST"]),
    Route("/v2/health/live", live, methods=["GET"]),
    Route("/v2/health/ready", ready, methods=["GET"]),
    Route("/v2", server_metadata, methods=["GET"]),
    Route("/v2/models/{name}", model_metadata, methods=["GET"]),
    Route("/v2/models/{name}/ready", model_ready, methods=["GET"]),
    Route("/v2/models/{name}/versions/{version}/infer", predict_endpoint, methods=["POST"]),
    Route("/v2/models/{name}/versions/{version}", model_metadata, methods=["GET"]),
    Route("/v2/models/{name}/versions/{version}/ready", model_ready, methods=["GET"]),
    Route("/v2/models/{name}/feedback", feedback_endpoint, methods=["POST"]),
    Route("/ping", ping, methods=["GET"]),
    Route("/health", ping, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi_json, methods=["GET"]),
    Route("/docs", docs, methods=["GET"]),
    Route("/admin/reload", admin_reload, methods=["POST"]),
    Route("/admin/config", admin_config, methods=["GET"]),
]


def build_app(state: ServingState) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app):
        if state.settings["reload_interval_s"] > 0:
            state.tasks.append(asyncio.create_task(state.holder.poll(state.settings["reload_interval_s"])))
        if state.access.stream is not None:
            state.tasks.append(asyncio.create_task(_every(1.0, state.access.flush)))
        if state.metrics.multiprocess:
            state.tasks.append(asyncio.create_task(_every(1.0, state.metrics.refresh)))
        # Everything loaded so far (torch, the model, the app) lives for the whole process: keep it
        # out of the cyclic GC's full collections, which otherwise stall the event loop for tens of ms.
        gc.collect()
        gc.freeze()
        model = state.holder.current
        log.info("serving %s version %s (%d features, %d classes) in process %d", model.name, model.version,
                 model.n_features, len(model.classes), os.getpid())
        try:
            yield
        finally:
            # uvicorn has stopped accepting and finished the in-flight requests by now
            state.ready = False
            await state.batcher.close()
            for t in state.tasks:
                t.cancel()
            if state.predlog is not None:
                rows = state.predlog.close()
                log.info("prediction log flushed: %d rows in total (%d at shutdown) under %s",
                         state.predlog.rows_written, rows, state.predlog.dir)
            state.access.close()
            state.metrics.process_exit()

    app = Starlette(routes=ROUTES, lifespan=lifespan,
                    exception_handlers={HTTPException: http_error, Exception: server_error})
    app.state.serving = state
    return Gate(app, state)


async def _every(seconds: float, fn) -> None:
    while True:
        await asyncio.sleep(seconds)
        fn()


def app_from_env() -> Any:
    """uvicorn factory for ``server.workers > 1``: each worker process loads the model itself."""
    from aiinfra.serving.server import build_state_from_spec

    # a spawned worker starts with Python's default logging: give it the CLI's format, so its
    # startup and shutdown lines (prediction-log flush) reach the operator
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    return build_app(build_state_from_spec(os.environ["AIINFRA_SERVE_SPEC"]))
