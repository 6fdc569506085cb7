"""The real schemas rendered manifests are checked against: Kubernetes' own (kubernetes-validate)
and the vendored KServe / KubeRay CRD schemas (tests/vendor/README.md), strictly."""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path
from typing import Any

VENDOR = Path(__file__).resolve().parents[1] / "vendor"
K8S_VERSION = "1.37.0"
CRDS = {
    ("serving.kserve.io/v1beta1", "InferenceService"): VENDOR / "kserve" / "inferenceservice-v1beta1.schema.json.gz",
    ("ray.io/v1", "RayService"): VENDOR / "kuberay" / "rayservice-v1.schema.json.gz",
}


def _strict(node: Any) -> Any:
    """Unknown fields are errors (kubectl --validate=strict) unless the schema preserves them."""
    if isinstance(node, dict):
        out = {k: _strict(v) for k, v in node.items()}
        preserve = out.get("x-kubernetes-preserve-unknown-fields")
        if "properties" in out and "additionalProperties" not in out and not preserve:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


@functools.cache
def crd_validator(api_version: str, kind: str):
    import jsonschema

    schema = _strict(json.loads(gzip.decompress(CRDS[(api_version, kind)].read_bytes())))
    return jsonschema.Draft7Validator(schema)


def validate(doc: dict[str, Any]) -> None:
    """Raise with every error when ``doc`` does not match its kind's real schema."""
    key = (doc["apiVersion"], doc["kind"])
    if key in CRDS:
        errors = sorted(crd_validator(*key).iter_errors(doc), key=lambda e: list(e.absolute_path))
        if errors:
            lines = [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors[:20]]
            raise AssertionError(f"{doc['kind']} {doc['metadata']['name']} is invalid:\n" + "\n".join(lines))
        return
    import kubernetes_validate

    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
