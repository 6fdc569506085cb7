"""The server's routes, defined once: path, methods, handler, who may call it, its OpenAPI operation.

Everything else is derived from :data:`ENDPOINTS`: the Starlette routes (:func:`starlette_routes`),
the role the Gate demands (:meth:`Endpoint.role`), the prediction fast path (``predict_kind``), and
the OpenAPI document (``aiinfra.serving.openapi.build_spec`` walks the table).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from starlette.routing import Route

from aiinfra.serving import handlers, predict


class Access(StrEnum):
    """Who may call an endpoint when API keys are configured."""

    public = "public"  # anyone (health, docs)
    predict = "predict"  # a key with the predict role (admin implies it)
    admin = "admin"  # a key with the admin role; without any keys configured: refused (403)
    metrics = "metrics"  # public with server.metrics_public (the default), else predict


@dataclass(frozen=True)
class Endpoint:
    path: str  # a Starlette path template: /v2/models/{name}/infer
    methods: tuple[str, ...]
    handler: Callable[..., Any]  # the Starlette endpoint
    access: Access
    operation: str  # the OpenAPI operation (aiinfra.serving.openapi.operations)
    # the Gate serves this route itself as a prediction of this kind (predict.INFER / INVOCATIONS)
    predict_kind: str | None = None

    def role(self, server_cfg: Any) -> str | None:
        """The key role this endpoint needs under ``server_cfg``; None: none."""
        if self.access is Access.metrics:
            return None if server_cfg.metrics_public else Access.predict.value
        return None if self.access is Access.public else self.access.value


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("/v2/health/live", ("GET",), handlers.live, Access.public, "live"),
    Endpoint("/v2/health/ready", ("GET",), handlers.ready, Access.public, "ready"),
    Endpoint("/v2", ("GET",), handlers.server_metadata, Access.public, "server_metadata"),
    Endpoint("/v2/models/{name}", ("GET",), handlers.model_metadata, Access.predict, "model_metadata"),
    Endpoint("/v2/models/{name}/ready", ("GET",), handlers.model_ready, Access.predict, "model_ready"),
    Endpoint("/v2/models/{name}/infer", ("POST",), handlers.infer, Access.predict, "infer", predict.INFER),
    Endpoint(
        "/v2/models/{name}/versions/{version}", ("GET",), handlers.model_metadata, Access.predict, "model_metadata"
    ),
    Endpoint(
        "/v2/models/{name}/versions/{version}/ready", ("GET",), handlers.model_ready, Access.predict, "model_ready"
    ),
    Endpoint(
        "/v2/models/{name}/versions/{version}/infer", ("POST",), handlers.infer, Access.predict, "infer", predict.INFER
    ),
    Endpoint("/v2/models/{name}/feedback", ("POST",), handlers.feedback_endpoint, Access.predict, "feedback"),
    Endpoint("/invocations", ("POST",), handlers.invocations, Access.predict, "invocations", predict.INVOCATIONS),
    Endpoint("/ping", ("GET",), handlers.ping, Access.public, "ping"),
    Endpoint("/health", ("GET",), handlers.ping, Access.public, "ping"),
    Endpoint("/metrics", ("GET",), handlers.metrics, Access.metrics, "metrics"),
    Endpoint("/openapi.json", ("GET",), handlers.openapi_json, Access.public, "openapi"),
    Endpoint("/docs", ("GET",), handlers.docs, Access.public, "docs"),
    Endpoint("/admin/reload", ("POST",), handlers.admin_reload, Access.admin, "reload"),
    Endpoint("/admin/config", ("GET",), handlers.admin_config, Access.admin, "config"),
)


def starlette_routes(endpoints: tuple[Endpoint, ...] = ENDPOINTS) -> list[Route]:
    return [Route(e.path, e.handler, methods=list(e.methods)) for e in endpoints]


class Matcher:
    """Finds the endpoint of a request path (any method) and its path parameters, without regexes:
    templates are grouped by segment count and compared segment by segment (the Gate runs this on
    every request)."""

    def __init__(self, endpoints: tuple[Endpoint, ...] = ENDPOINTS):
        self.static: dict[str, Endpoint] = {}
        self.templated: dict[int, list[tuple[list[str], Endpoint]]] = {}
        for e in endpoints:
            if "{" in e.path:
                parts = e.path.split("/")
                self.templated.setdefault(len(parts), []).append((parts, e))
            else:
                self.static.setdefault(e.path, e)

    def match(self, path: str) -> tuple[Endpoint, dict[str, str]] | None:
        e = self.static.get(path)
        if e is not None:
            return e, {}
        parts = path.split("/")
        for template, e in self.templated.get(len(parts), ()):
            params: dict[str, str] = {}
            for want, got in zip(template, parts, strict=True):  # same segment count
                if want.startswith("{"):
                    if not got:
                        break
                    params[want[1:-1]] = got
                elif want != got:
                    break
            else:
                return e, params
        return None
