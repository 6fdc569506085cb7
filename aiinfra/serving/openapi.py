"""The server's OpenAPI 3 document, built from the served model's features, and the docs page."""

from __future__ import annotations

from typing import Any

_ERROR = {"description": "a client error, with a message naming the problem",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _json(schema_ref: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}}}


def build_spec(model: Any, version: str, auth: bool) -> dict[str, Any]:
    n = model.n_features
    number = {"type": "number"}
    row = {"type": "array", "items": number, "minItems": n, "maxItems": n}
    name_param = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
                  "example": model.name}
    version_param = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
    errors = {"400": _ERROR, "401": _ERROR, "403": _ERROR, "404": _ERROR, "413": _ERROR, "422": _ERROR,
              "503": _ERROR}
    infer_op = {
        "summary": "Open Inference Protocol (KServe V2) inference",
        "parameters": [name_param],
        "requestBody": {"required": True, **_json("InferRequest")},
        "responses": {"200": {"description": "predictions", **_json("InferResponse")}, **errors},
    }
    meta_op = {"summary": "model metadata (V2)", "parameters": [name_param],
               "responses": {"200": {"description": "metadata", **_json("ModelMetadata")}, **errors}}
    ready_op = {"summary": "model readiness (V2)", "parameters": [name_param],
                "responses": {"200": {"description": "ready"}, **errors}}

    def versioned(op: dict) -> dict:
        return {**op, "parameters": [name_param, version_param]}

    spec: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": "aiinfra model server", "version": version,
                 "description": f"Serves '{model.name}' (features: {', '.join(model.features)}; "
                                f"classes: {', '.join(map(str, model.classes.tolist()))})."},
        "paths": {
            "/v2/health/live": {"get": {"summary": "liveness", "responses": {"200": {"description": "live"}}}},
            "/v2/health/ready": {"get": {"summary": "readiness",
                                         "responses": {"200": {"description": "ready"},
                                                       "503": {"description": "not ready"}}}},
            "/v2": {"get": {"summary": "server metadata", "responses": {"200": {"description": "metadata"}}}},
            "/v2/models/{name}": {"get": meta_op},
            "/v2/models/{name}/ready": {"get": ready_op},
            "/v2/models/{name}/infer": {"post": infer_op},
            "/v2/models/{name}/versions/{version}": {"get": versioned(meta_op)},
            "/v2/models/{name}/versions/{version}/ready": {"get": versioned(ready_op)},
            "/v2/models/{name}/versions/{version}/infer": {"post": versioned(infer_op)},
            "/invocations": {"post": {
                "summary": "MLflow scoring-server compatible predictions",
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/InvocationsRequest"}}}},
                "responses": {"200": {"description": "predictions", **_json("InvocationsResponse")}, **errors},
            }},
            "/ping": {"get": {"summary": "MLflow-compatible health", "responses": {"200": {"description": "ok"}}}},
            "/health": {"get": {"summary": "MLflow-compatible health", "responses": {"200": {"description": "ok"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "metrics"}}}},
            "/admin/reload": {"post": {"summary": "re-resolve the model URI now and switch if it moved (admin)",
                                       "responses": {"200": {"description": "result"}, **errors}}},
            "/admin/config": {"get": {"summary": "the effective server config (admin)",
                                      "responses": {"200": {"description": "config"}, **errors}}},
        },
        "components": {"schemas": {
            "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
            "InferTensor": {"type": "object", "required": ["name", "shape", "datatype", "data"], "properties": {
                "name": {"type": "string", "example": "input"},
                "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}, "example": [1, n]},
                "datatype": {"type": "string", "enum": ["FP32", "FP64", "INT32", "INT64"]},
                "data": {"type": "array", "items": {"oneOf": [number, row]}},
                "parameters": {"type": "object"}}},
            "InferRequest": {"type": "object", "required": ["inputs"], "properties": {
                "id": {"type": "string"},
                "parameters": {"type": "object"},
                "inputs": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/InferTensor"}},
                "outputs": {"type": "array", "items": {"type": "object", "properties": {
                    "name": {"type": "string", "enum": ["label", "probabilities"]},
                    "parameters": {"type": "object"}}}}}},
            "InferResponse": {"type": "object", "properties": {
                "model_name": {"type": "string"}, "model_version": {"type": "string"}, "id": {"type": "string"},
                "outputs": {"type": "array", "items": {"type": "object"}}}},
            "ModelMetadata": {"type": "object", "properties": {
                "name": {"type": "string"}, "versions": {"type": "array", "items": {"type": "string"}},
                "platform": {"type": "string"}, "inputs": {"type": "array", "items": {"type": "object"}},
                "outputs": {"type": "array", "items": {"type": "object"}}}},
            "InvocationsRequest": {"type": "object", "description": "exactly one of the four keys", "properties": {
                "dataframe_split": {"type": "object", "properties": {
                    "columns": {"type": "array", "items": {"type": "string", "enum": model.features}},
                    "data": {"type": "array", "items": row}}},
                "dataframe_records": {"type": "array", "items": {
                    "type": "object", "properties": {f: number for f in model.features}}},
                "instances": {"type": "array", "items": row},
                "inputs": {"type": "array", "items": row}}},
            "InvocationsResponse": {"type": "object", "properties": {
                "predictions": {"type": "array", "items": {}},
                "probabilities": {"type": "array", "items": {"type": "array", "items": number}},
                "model_name": {"type": "string"}, "model_version": {"type": "string"}}},
        }},
    }
    if auth:
        spec["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}
        spec["security"] = [{"bearer": []}, {"apiKey": []}]
    return spec


DOCS_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>aiinfra model server</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"></head>
<body><noscript>The OpenAPI document is at <a href="openapi.json">/openapi.json</a>.</noscript>
<div id="ui"><p>Loading the API page; the raw OpenAPI document is at <a href="openapi.json">/openapi.json</a>.</p></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>if (window.SwaggerUIBundle) { SwaggerUIBundle({url: "openapi.json", dom_id: "#ui"}); }</script>
</body></html>
"""
