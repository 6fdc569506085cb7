"""The HTTP handlers of the Starlette routes (the table in ``routes.py`` names them).

The prediction routes are served by the Gate itself (``predict.py``: the hot path); everything
else is a plain Starlette endpoint here. Every response names the model version (``X-Model-Version``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from aiinfra import __version__
from aiinfra.config.typed import to_dict
from aiinfra.serving import feedback, predict, protocol
from aiinfra.serving.openapi import build_spec, docs_page
from aiinfra.serving.state import ServingState

log = logging.getLogger("aiinfra.serving")


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": message}, status, headers)


def _model_headers(model: Any, request_id: str | None = None) -> dict[str, str]:
    h = {"X-Model-Name": model.name, "X-Model-Version": model.version}
    if request_id:
        h["X-Request-ID"] = request_id
    return h


def _check_name(request: Request, model: Any) -> Response | None:
    wrong = predict.unknown_model(model, request.path_params["name"], request.path_params.get("version"))
    return error(404, wrong, _model_headers(model)) if wrong else None


async def _predict(request: Request, kind: str) -> Response:
    st: ServingState = request.app.state.serving
    status, ctype, body, headers = await predict.handle(st, kind, request.path_params, request.scope, request.receive)
    return Response(body, status, {k.decode(): v.decode() for k, v in headers}, ctype.decode())


# Starlette adapters of the prediction routes. The Gate serves these routes itself (the fast path);
# the adapters answer when the app is mounted without the Gate.
async def infer(request: Request) -> Response:
    return await _predict(request, predict.INFER)


async def invocations(request: Request) -> Response:
    return await _predict(request, predict.INVOCATIONS)


async def live(request: Request) -> Response:
    return json_response({"live": True})


async def ready(request: Request) -> Response:
    st: ServingState = request.app.state.serving
    model = st.holder.current
    if not st.ready:
        return json_response({"ready": False, "reason": "shutting down"}, 503)
    body: dict[str, Any] = {"ready": True, "model_name": model.name, "model_version": model.version}
    if st.predlog is not None:
        health = st.predlog.health()
        body["prediction_log"] = health
        if st.predlog.refusing:  # policy block with a full buffer: predictions answer 503, so does readiness
            body.update(ready=False, reason="prediction log cannot be written and its buffer is full")
            return json_response(body, 503, headers=_model_headers(model))
    return json_response(body, headers=_model_headers(model))


async def server_metadata(request: Request) -> Response:
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
    return json_response(
        {"name": model.name, "ready": st.ready}, 200 if st.ready else 503, headers=_model_headers(model)
    )


async def ping(request: Request) -> Response:
    return Response(b"\n", media_type="application/json")


async def metrics(request: Request) -> Response:
    st: ServingState = request.app.state.serving
    return Response(st.metrics.render(), media_type=st.metrics.content_type)


def _spec(request: Request, model: Any) -> dict[str, Any]:
    st: ServingState = request.app.state.serving
    return build_spec(model, __version__, st.keys.enabled, request.app.state.endpoints)


async def openapi_json(request: Request) -> Response:
    st: ServingState = request.app.state.serving
    model = st.holder.current
    key = model.version
    if key not in st.spec_cache:
        st.spec_cache = {key: orjson.dumps(_spec(request, model))}
    return Response(st.spec_cache[key], media_type="application/json")


async def docs(request: Request) -> Response:
    st: ServingState = request.app.state.serving
    model = st.holder.current
    types = protocol.column_types(model)
    if types is None:
        inputs = [
            {
                "name": protocol.INPUT_NAME,
                "shape": [1, model.n_features],
                "datatype": "FP32",
                "data": [0.0] * model.n_features,
            }
        ]
    else:  # one input per column, with a training value of each as the example
        inputs = [
            {
                "name": c.name,
                "shape": [1],
                "datatype": protocol.COLUMN_DATATYPES.get(types[c.name], "BYTES"),
                "data": [_example_value(c.example, types[c.name])],
            }
            for c in model.contract.columns
        ]
    example = {"url": f"{str(request.base_url).rstrip('/')}/v2/models/{model.name}/infer", "body": {"inputs": inputs}}
    return HTMLResponse(docs_page(_spec(request, model), example))


def _example_value(text: str, kind: str) -> Any:
    """A contract column's example (a string) as the JSON value a client sends."""
    if kind == "numeric":
        try:
            return float(text)
        except ValueError:
            return 0.0
    if kind == "boolean":
        return text.strip().lower() in ("true", "yes", "1", "t", "y")
    return text


async def feedback_endpoint(request: Request) -> Response:
    """Labels for earlier predictions, by request id (aiinfra.serving.feedback)."""
    st: ServingState = request.app.state.serving
    model = st.holder.current
    bad = _check_name(request, model)
    if bad is not None:
        return bad
    target = feedback.target_of(model)
    try:
        body = await predict.read_body(
            request.receive, request.headers.get("content-length"), st.server_cfg.max_body_bytes, st.body_guard
        )
        ids, labels = feedback.parse(
            body, model.classes, target, st.server_cfg.max_rows, getattr(model, "task", "") == "regression"
        )
    except protocol.RequestError as exc:
        headers = _model_headers(model)
        if exc.status in predict.CLOSE_AFTER or exc.status == 503:
            headers["Connection"] = "close"
        return error(exc.status, exc.message, headers)
    await asyncio.to_thread(st.feedback.write, ids, labels, target, model.name, model.version)
    st.metrics.feedback.inc(len(ids))
    return json_response(
        {"accepted": len(ids), "model_name": model.name, "model_version": model.version}, headers=_model_headers(model)
    )


async def admin_reload(request: Request) -> Response:
    st: ServingState = request.app.state.serving
    result = await st.holder.check(force=request.query_params.get("force") in ("1", "true"))
    return json_response(result, 200 if "error" not in result else 502, headers=_model_headers(st.holder.current))


async def admin_config(request: Request) -> Response:
    st: ServingState = request.app.state.serving
    model = st.holder.current
    return json_response(
        {
            "server": to_dict(st.server_cfg),
            "model": {
                "name": model.name,
                "version": model.version,
                "uri": st.holder.uri,
                "path": str(model.path),
                "run_id": model.run_id,
                "features": model.features,
                "classes": model.classes.tolist(),
            },
            "auth": {"enabled": st.keys.enabled, "key_ids": [k.id for k in st.keys.keys]},
            "reload": {"last_check": st.holder.last_check, "last_error": st.holder.last_error},
        }
    )


async def http_error(request: Request, exc: HTTPException) -> Response:
    messages = {
        404: f"no such endpoint: {request.method} {request.url.path} (see /docs)",
        405: f"method {request.method} not allowed on {request.url.path}",
    }
    return error(exc.status_code, messages.get(exc.status_code, str(exc.detail)), getattr(exc, "headers", None))


async def server_error(request: Request, exc: Exception) -> Response:
    log.exception("internal error on %s %s", request.method, request.url.path)
    return error(500, f"internal server error ({type(exc).__name__}); see the server log")
