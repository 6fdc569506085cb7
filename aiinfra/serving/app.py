"""The ASGI application: auth, metrics and the access log around the routes of ``routes.py``.

Built for speed on a small machine: one pure-ASGI wrapper (:class:`Gate`; no BaseHTTPMiddleware,
which costs a task per request) that serves the prediction routes itself (``predict.py``) and hands
everything else to plain Starlette routes; orjson, no pandas, inline compute for tiny models.
Every response names the model version that produced it (``X-Model-Version`` header and, for
predictions, the body).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException

from aiinfra.serving import predict
from aiinfra.serving.auth import secret_from_headers
from aiinfra.serving.guard import HeaderSweeper, Shutdown, uvicorn_server
from aiinfra.serving.handlers import error, http_error, server_error
from aiinfra.serving.routes import ENDPOINTS, Endpoint, Matcher, starlette_routes
from aiinfra.serving.state import ServingState
from aiinfra.serving.tls import CLIENT_CN_KEY
from aiinfra.serving.usage import prediction_routes

log = logging.getLogger("aiinfra.serving")


class Gate:
    """Auth by the endpoint table, the prediction fast path, and one metrics/access-log record per request."""

    def __init__(self, app: Any, state: ServingState, endpoints: tuple[Endpoint, ...] = ENDPOINTS):
        self.app = app
        self.state = state
        self.matcher = Matcher(endpoints)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        st = self.state
        st.inflight += 1  # aiinfra_inflight_requests, read at scrape time
        try:
            await self._handle(scope, receive, send)
        finally:
            st.inflight -= 1

    async def _handle(self, scope, receive, send) -> None:
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

        found = self.matcher.match(path)
        endpoint, params = found if found is not None else (None, {})
        role = endpoint.role(st.server_cfg) if endpoint is not None else None
        key_id = None
        resp = None
        if role is not None and st.keys.enabled:
            headers = {
                k.decode("latin-1"): v.decode("latin-1")
                for k, v in scope["headers"]
                if k in (b"authorization", b"x-api-key")
            }
            key = st.keys.identify(secret_from_headers(headers))
            if key is None:
                resp = error(
                    401,
                    "missing or invalid API key: send 'Authorization: Bearer <key>' or 'X-API-Key'",
                    {"WWW-Authenticate": "Bearer"},
                )
            else:
                key_id = key.id
                if role not in key.roles:
                    resp = error(403, f"API key '{key.id}' lacks the '{role}' role needed for {path}")
        elif role == "admin":
            # No keys configured: admin endpoints change the server, so they need a credential even
            # from this machine (behind a reverse proxy every client looks local). The model is
            # still followed by polling (server.reload_interval_s).
            resp = error(
                403,
                "admin endpoints need an admin API key, and none is configured: set "
                f"{st.server_cfg.api_keys_env or 'AIINFRA_API_KEYS'}='<id>:admin:<secret>' "
                "(or server.api_keys_file) and restart the server",
            )
        if resp is not None:
            await resp(scope, receive, send_wrapped)
            self._observe(scope, path, status_box[0], t0, key_id)
            return
        scope["aiinfra.key_id"] = key_id
        try:
            if endpoint is not None and endpoint.predict_kind is not None and scope["method"] in endpoint.methods:
                # the hot path: plain ASGI, no Starlette router or Request/Response objects
                scope["aiinfra.route"] = endpoint.path
                status, ctype, body, headers = await predict.handle(st, endpoint.predict_kind, params, scope, receive)
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
            st.access.write(
                {
                    "ts": time.time(),
                    "method": scope["method"],
                    "path": path,
                    "status": status,
                    "duration_s": round(elapsed, 6),
                    "request_id": scope.get("aiinfra.request_id"),
                    "key_id": key_id,
                    "rows": scope.get("aiinfra.rows"),
                    "model_version": scope.get("aiinfra.model_version"),
                    "client": client[0] if client else None,
                    # mutual TLS: the verified client certificate's subject CN (null otherwise)
                    "client_cn": scope.get(CLIENT_CN_KEY),
                }
            )


def build_app(state: ServingState, endpoints: tuple[Endpoint, ...] = ENDPOINTS) -> Gate:
    """The ASGI app of one server process: the endpoint table's routes behind the Gate."""

    @contextlib.asynccontextmanager
    async def lifespan(app):
        interval = state.server_cfg.reload_interval_s
        if interval > 0:
            state.tasks.append(asyncio.create_task(state.holder.poll(interval)))
        if state.access.stream is not None:
            state.tasks.append(asyncio.create_task(_every(1.0, state.access.flush)))
        if state.metrics.multiprocess:
            state.tasks.append(asyncio.create_task(_every(1.0, state.metrics.refresh)))
        state.usage.routes = prediction_routes(endpoints)
        state.tasks.append(asyncio.create_task(state.usage.run()))  # serving usage, for `aiinfra costs`
        # stalled clients and the order of a shutdown (aiinfra.serving.guard)
        state.tasks.append(asyncio.create_task(state.body_guard.run()))
        server = uvicorn_server()  # the header sweep and the SIGTERM order need uvicorn's server
        if server is not None:
            sweeper = HeaderSweeper(server.server_state, state.server_cfg.body_timeout_s, state.metrics.timed_out.inc)
            state.tasks.append(asyncio.create_task(sweeper.run()))
            Shutdown(state, state.body_guard, state.server_cfg.shutdown_delay_s).install(server)
        # Everything loaded so far (torch, the model, the app) lives for the whole process: keep it
        # out of the cyclic GC's full collections, which otherwise stall the event loop for tens of ms.
        gc.collect()
        gc.freeze()
        model = state.holder.current
        log.info(
            "serving %s version %s (%d features, %d classes) in process %d",
            model.name,
            model.version,
            model.n_features,
            len(model.classes),
            os.getpid(),
        )
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
                log.info(
                    "prediction log flushed: %d rows in total (%d at shutdown) under %s",
                    state.predlog.rows_written,
                    rows,
                    state.predlog.dir,
                )
            state.access.close()
            state.usage.close()  # the process's final totals, after the last request and log flush
            state.metrics.process_exit()

    app = Starlette(
        routes=starlette_routes(endpoints),
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.state.serving = state
    app.state.endpoints = endpoints
    return Gate(app, state, endpoints)


async def _every(seconds: float, fn) -> None:
    while True:
        await asyncio.sleep(seconds)
        fn()
