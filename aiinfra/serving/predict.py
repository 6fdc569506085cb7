"""The prediction endpoints (V2 infer, MLflow /invocations) as plain ASGI: the hot path.

At a few thousand requests/s on a small machine, Starlette's router, its two exception middlewares
and its Request/Response objects cost more than the model. Here a request is: read the body (with
the size limit), parse and validate, hand the rows to the batcher, log them, answer, with raw
header lists and two ``send`` calls. Errors are 4xx/503 JSON bodies like everywhere else.
"""

from __future__ import annotations

from typing import Any

import orjson

from aiinfra.errors import DataValidationError
from aiinfra.serving import protocol
from aiinfra.serving.batcher import QueueFull, ShuttingDown
from aiinfra.serving.guard import BodyAborted, BodyGuard, BodyTimeout
from aiinfra.serving.protocol import RequestError

JSON = b"application/json"
BINARY = b"application/octet-stream"

#: the kinds of prediction routes (``Endpoint.predict_kind`` in routes.py)
INFER = "infer"  # Open Inference Protocol
INVOCATIONS = "invocations"  # MLflow scoring server


#: statuses after which the connection is closed: the rest of the body may still be on its way
CLOSE_AFTER = frozenset((408, 413))
CONNECTION_CLOSE = (b"connection", b"close")


async def read_body(receive, content_length: str | None, limit: int, guard: BodyGuard | None = None) -> bytes:
    """The whole body, within ``limit`` bytes and, with a ``guard``, within ``server.body_timeout_s``."""
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise RequestError(400, "invalid Content-Length header") from None
        if declared > limit:
            raise RequestError(
                413,
                f"request body of {declared} bytes is larger than the limit "
                f"({limit} bytes, server.max_body_bytes): send fewer rows per request",
            )
    if guard is None:
        return await _receive_body(receive, limit)
    try:
        return await guard.read(lambda: _receive_body(receive, limit))
    except BodyTimeout:
        raise RequestError(
            408,
            f"request body not received within {guard.timeout_s:g} s (server.body_timeout_s): "
            "send the whole body promptly",
        ) from None
    except BodyAborted:
        raise RequestError(503, "server is shutting down: retry on another instance") from None


async def _receive_body(receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestError(400, "client disconnected before the body was complete")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise RequestError(413, f"request body is larger than the limit ({limit} bytes, server.max_body_bytes)")
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class LogFull(Exception):
    """Policy ``block``: the prediction log's buffer is full while its writes fail."""


def unknown_model(model: Any, name: str, version: str | None) -> str | None:
    """Why ``name`` (and ``version``) from a request path is not the served model, or None.
    Shared by the prediction routes and the metadata/readiness routes (app.py)."""
    if name != model.name:
        return f"unknown model '{name}': this server serves '{model.name}'"
    if version is not None and version != model.version:
        return f"model '{name}' version '{version}' is not served; the served version is '{model.version}'"
    return None


def model_headers(model: Any, request_id: str | None = None) -> list[tuple[bytes, bytes]]:
    h = [(b"x-model-name", model.name.encode()), (b"x-model-version", model.version.encode())]
    if request_id:
        h.append((b"x-request-id", request_id.encode()))
    return h


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


async def handle(
    st: Any, kind: str, params: dict[str, str], scope: dict, receive
) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
    """(status, content type, body, headers) of a prediction request."""
    model = st.holder.current
    try:
        if kind == INFER:
            wrong = unknown_model(model, params["name"], params.get("version"))
            if wrong:
                raise RequestError(404, wrong)
        if st.predlog is not None and st.predlog.refusing:
            raise LogFull()
        headers = {k: v for k, v in scope["headers"]}
        cl = headers.get(b"content-length")
        body = await read_body(
            receive, cl.decode("latin-1") if cl is not None else None, st.server_cfg.max_body_bytes, st.body_guard
        )
        given_id = headers.get(b"x-request-id")
        if given_id is not None:
            given_id = given_id.decode("latin-1")
            problem = protocol.request_id_problem(given_id)
            if problem:
                raise RequestError(400, f"X-Request-ID header {problem}")
        # the model's runtime decodes the body into its batch (aiinfra.serving.runtime.InputDecoder)
        if kind == INFER:
            bh = headers.get(protocol.BINARY_HEADER.encode())
            req = model.inputs.from_v2(body, bh.decode("latin-1") if bh is not None else None, st.server_cfg.max_rows)
            x = req.x
            rid = st.request_id(req.id or given_id)
        else:
            ctype = headers.get(b"content-type", JSON).decode("latin-1")
            x = model.inputs.from_invocations(body, ctype, st.server_cfg.max_rows)
            rid = st.request_id(given_id)
        scope["aiinfra.request_id"] = rid
        result = await st.batcher.predict(x, model, rid)
    except DataValidationError as exc:
        # rows that break the model's data contract (aiinfra.data.features.ContractError: a wrong
        # type, a missing column, a forbidden null): the message names the column and the expected type
        message = f"{exc.message} (hint: {exc.hint})" if exc.hint else exc.message
        return 400, JSON, error_body(message), model_headers(model)
    except RequestError as exc:
        out = model_headers(model)
        if exc.status in CLOSE_AFTER:
            out.append(CONNECTION_CLOSE)
        elif exc.status == 503:
            out += [(b"retry-after", str(st.server_cfg.retry_after_s).encode()), CONNECTION_CLOSE]
        return exc.status, JSON, error_body(exc.message), out
    except LogFull:
        return (
            503,
            JSON,
            error_body(
                "the prediction log cannot be written and its buffer is full (server.log_failure_policy=block): "
                "retry after the Retry-After delay"
            ),
            [(b"retry-after", str(st.server_cfg.retry_after_s).encode()), *model_headers(model)],
        )
    except QueueFull:
        return (
            503,
            JSON,
            error_body("server is at capacity (prediction queue full): retry after the Retry-After delay"),
            [(b"retry-after", str(st.server_cfg.retry_after_s).encode()), *model_headers(model)],
        )
    except ShuttingDown:
        return (
            503,
            JSON,
            error_body("server is shutting down: retry on another instance"),
            [
                (b"retry-after", str(st.server_cfg.retry_after_s).encode()),
                (b"connection", b"close"),
                *model_headers(model),
            ],
        )
    model = result.model
    labels = None if result.index is None else model.classes[result.index]  # None: regression values
    # (the batcher has logged the rows: one prediction-log append per forward pass)
    scope["aiinfra.rows"] = len(x)
    scope["aiinfra.model_version"] = model.version
    if kind == INFER:
        content, extra = protocol.v2_response(req, model, rid, result.proba, labels)
        out = model_headers(model, rid)
        if extra:
            out += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
            return 200, BINARY, content, out
        return 200, JSON, content, out
    return 200, JSON, protocol.invocations_response(model, result.proba, labels), model_headers(model, rid)


async def respond(send, status: int, content_type: bytes, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers.append((b"content-type", content_type))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
