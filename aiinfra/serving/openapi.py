"""The server's OpenAPI 3 document, built from the served model's features, and the docs page."""

from __future__ import annotations

import html
import json
from typing import Any

from aiinfra.serving.protocol import column_types

_ERROR = {
    "description": "a client error, with a message naming the problem",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def _json(schema_ref: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}}}


def operations(model: Any) -> dict[str, dict[str, Any]]:
    """The OpenAPI operation of every ``Endpoint.operation`` name (routes.py), without path parameters:
    :func:`build_spec` adds those from each endpoint's path template."""
    errors = {"400": _ERROR, "401": _ERROR, "403": _ERROR, "404": _ERROR, "413": _ERROR, "422": _ERROR, "503": _ERROR}

    def ok(description: str, schema: str | None = None) -> dict[str, Any]:
        return {"200": {"description": description, **(_json(schema) if schema else {})}}

    return {
        "live": {"summary": "liveness", "responses": ok("live")},
        "ready": {"summary": "readiness", "responses": {**ok("ready"), "503": {"description": "not ready"}}},
        "server_metadata": {"summary": "server metadata", "responses": ok("metadata")},
        "model_metadata": {
            "summary": "model metadata (V2)",
            "responses": {**ok("metadata", "ModelMetadata"), **errors},
        },
        "model_ready": {"summary": "model readiness (V2)", "responses": {**ok("ready"), **errors}},
        "infer": {
            "summary": "Open Inference Protocol (KServe V2) inference",
            "requestBody": {"required": True, **_json("InferRequest")},
            "responses": {**ok("predictions", "InferResponse"), **errors},
        },
        "feedback": {
            "summary": "labels for earlier predictions, by request id (the monitor joins them to the log)",
            "requestBody": {"required": True, **_json("FeedbackRequest")},
            "responses": {**ok("stored", "FeedbackResponse"), **errors},
        },
        "invocations": {
            "summary": "MLflow scoring-server compatible predictions",
            "requestBody": {"required": True, **_json("InvocationsRequest")},
            "responses": {**ok("predictions", "InvocationsResponse"), **errors},
        },
        "ping": {"summary": "MLflow-compatible health", "responses": ok("ok")},
        "metrics": {"summary": "Prometheus metrics", "responses": ok("metrics")},
        "openapi": {"summary": "this OpenAPI document", "responses": ok("the document")},
        "docs": {"summary": "endpoint reference (HTML)", "responses": ok("the page")},
        "reload": {
            "summary": "re-resolve the model URI now and switch if it moved (admin)",
            "responses": {**ok("result"), **errors},
        },
        "config": {"summary": "the effective server config (admin)", "responses": {**ok("config"), **errors}},
    }


def _path_parameters(path: str, model: Any) -> list[dict[str, Any]]:
    params = []
    for part in path.split("/"):
        if part.startswith("{"):
            name = part[1:-1]
            param = {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            if name == "name":
                param["example"] = model.name
            params.append(param)
    return params


#: the JSON schema of a raw column's value by contract type (a model with a data contract)
_COLUMN_SCHEMAS = {
    "numeric": {"type": "number"},
    "boolean": {"type": "boolean"},
    "datetime": {"type": "string", "format": "date-time", "example": "2024-05-17"},
    "categorical": {"type": "string"},
    "text": {"type": "string"},
}


def _column_properties(model: Any) -> tuple[dict[str, Any], bool]:
    """(JSON schema per input column, whether the inputs are typed columns rather than numbers)."""
    types = column_types(model)
    if types is None:
        return {f: {"type": "number"} for f in model.features}, False
    nullable = {c.name: c.nullable for c in model.contract.columns}
    props = {}
    for name, kind in types.items():
        schema = dict(_COLUMN_SCHEMAS.get(kind, {"type": "string"}))
        if nullable.get(name):
            schema["nullable"] = True
        props[name] = schema
    return props, True


def build_spec(model: Any, version: str, auth: bool, endpoints: Any) -> dict[str, Any]:
    """The OpenAPI document of ``endpoints`` (``aiinfra.serving.routes.ENDPOINTS``) serving ``model``."""
    n = model.n_features
    number = {"type": "number"}
    columns, typed = _column_properties(model)
    # a row without names: numbers, or (typed columns) any scalar in the features' order
    row = {"type": "array", "items": {} if typed else number, "minItems": n, "maxItems": n}
    regression = getattr(model, "task", "") == "regression"
    outputs = ["predictions"] if regression else ["label", "probabilities"]
    datatypes = ["FP32", "FP64", "INT32", "INT64"] + (["BYTES", "BOOL"] if typed else [])
    predicts = "task: regression" if regression else f"classes: {', '.join(map(str, model.classes.tolist()))}"
    ops = operations(model)
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        op = dict(ops[endpoint.operation])
        params = _path_parameters(endpoint.path, model)
        if params:
            op["parameters"] = params
        for method in endpoint.methods:
            paths.setdefault(endpoint.path, {})[method.lower()] = op

    spec: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {
            "title": "aiinfra model server",
            "version": version,
            "description": f"Serves '{model.name}' (features: {', '.join(model.features)}; {predicts}).",
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
                "InferTensor": {
                    "type": "object",
                    "required": ["name", "shape", "datatype", "data"],
                    "properties": {
                        "name": {"type": "string", "example": "input"},
                        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}, "example": [1, n]},
                        "datatype": {"type": "string", "enum": datatypes},
                        "data": {"type": "array", "items": {} if typed else {"oneOf": [number, row]}},
                        "parameters": {"type": "object"},
                    },
                },
                "InferRequest": {
                    "type": "object",
                    "required": ["inputs"],
                    "properties": {
                        "id": {"type": "string"},
                        "parameters": {"type": "object"},
                        "inputs": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"$ref": "#/components/schemas/InferTensor"},
                        },
                        "outputs": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "name": {"type": "string", "enum": outputs},
                                    "parameters": {"type": "object"},
                                },
                            },
                        },
                    },
                },
                "InferResponse": {
                    "type": "object",
                    "properties": {
                        "model_name": {"type": "string"},
                        "model_version": {"type": "string"},
                        "id": {"type": "string"},
                        "outputs": {"type": "array", "items": {"type": "object"}},
                    },
                },
                "ModelMetadata": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "versions": {"type": "array", "items": {"type": "string"}},
                        "platform": {"type": "string"},
                        "inputs": {"type": "array", "items": {"type": "object"}},
                        "outputs": {"type": "array", "items": {"type": "object"}},
                    },
                },
                "InvocationsRequest": {
                    "type": "object",
                    "description": "exactly one of the four keys",
                    "properties": {
                        "dataframe_split": {
                            "type": "object",
                            "properties": {
                                "columns": {"type": "array", "items": {"type": "string", "enum": model.features}},
                                "data": {"type": "array", "items": row},
                            },
                        },
                        "dataframe_records": {
                            "type": "array",
                            "items": {"type": "object", "properties": columns},
                        },
                        "instances": {"type": "array", "items": row},
                        "inputs": {"type": "array", "items": row},
                    },
                },
                "FeedbackRequest": {
                    "type": "object",
                    "required": ["labels"],
                    "properties": {
                        "labels": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "object",
                                "required": ["request_id", "label"],
                                "properties": {
                                    "request_id": {
                                        "type": "string",
                                        "description": "the X-Request-ID / V2 id of the prediction",
                                    },
                                    "label": {
                                        "description": "the true class: one of "
                                        + ", ".join(map(str, model.classes.tolist())),
                                        "example": (model.classes.tolist() or [0])[0],
                                    },
                                },
                            },
                        }
                    },
                },
                "FeedbackResponse": {
                    "type": "object",
                    "properties": {
                        "accepted": {"type": "integer"},
                        "model_name": {"type": "string"},
                        "model_version": {"type": "string"},
                    },
                },
                "InvocationsResponse": {
                    "type": "object",
                    "properties": {
                        "predictions": {"type": "array", "items": number if regression else {}},
                        **(
                            {}
                            if regression
                            else {"probabilities": {"type": "array", "items": {"type": "array", "items": number}}}
                        ),
                        "model_name": {"type": "string"},
                        "model_version": {"type": "string"},
                    },
                },
            }
        },
    }
    if auth:
        spec["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
        spec["security"] = [{"bearer": []}, {"apiKey": []}]
    return spec


def docs_page(spec: dict[str, Any], example: dict[str, Any] | None = None) -> str:
    """The /docs page: an endpoint reference rendered here from the OpenAPI document, so it works
    on machines without internet access, plus Swagger UI's try-it-out when its CDN is reachable."""
    rows = []
    for path, ops in spec.get("paths", {}).items():
        for method, op in ops.items():
            codes = ", ".join(sorted(op.get("responses", {})))
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(op.get('summary', ''))}</td><td>{html.escape(codes)}</td></tr>"
            )
    info = spec.get("info", {})
    example_html = ""
    if example:
        example_html = (
            "<h2>Example</h2><pre>"
            + html.escape(
                f"curl -s -X POST {example['url']} -H 'Content-Type: application/json' \\\n"
                f"  -d '{json.dumps(example['body'])}'",
                quote=False,
            )
            + "</pre>"
        )
    auth = (
        "<p>Every request except health, metrics and this page needs an API key: "
        "<code>Authorization: Bearer &lt;key&gt;</code> or <code>X-API-Key</code>.</p>"
        if spec.get("security")
        else ""
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(info.get("title", "aiinfra model server"))}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:70em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}} pre{{background:#f4f4f4;padding:1em}}</style>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"></head>
<body><h1>{html.escape(info.get("title", ""))} {html.escape(str(info.get("version", "")))}</h1>
<p>{html.escape(info.get("description", ""))}</p>
<p>The OpenAPI document: <a href="openapi.json">/openapi.json</a>.</p>{auth}
<h2>Endpoints</h2><table><tr><th>method</th><th>path</th><th>what</th><th>statuses</th></tr>
{"".join(rows)}</table>{example_html}
<h2>Try it</h2><div id="ui"><p id="ui-note">Swagger UI loads from cdn.jsdelivr.net; without internet access
the reference above and <a href="openapi.json">/openapi.json</a> are what this server offers.</p></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js" async
 onload="SwaggerUIBundle({{url: 'openapi.json', dom_id: '#ui'}})"></script>
</body></html>
"""
