"""``aiinfra deploy kserve``: an InferenceService (serving.kserve.io/v1beta1) whose predictor is the
aiinfra server as a custom container speaking the Open Inference Protocol (V2), autoscaled on
in-flight requests per pod (``scaleMetric: concurrency``), scraped by Prometheus; plus the alert
rules and dashboard (:mod:`aiinfra.deploy.monitoring`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiinfra.deploy import monitoring
from aiinfra.deploy.container import container, labels
from aiinfra.deploy.k8s import resources
from aiinfra.deploy.output import write_yaml


def _probe(path: str, p: Any) -> dict[str, Any]:
    # no port: Knative (serverless mode) accepts only the container's single port and fills it in
    return {
        "httpGet": {"path": path},
        "periodSeconds": int(p.period_s),
        "timeoutSeconds": int(p.timeout_s),
        "failureThreshold": int(p.failure_threshold),
    }


def render(cfg: Any, d: Any, out: Path) -> list[Path]:
    c = container(cfg, d, "kserve")
    annotations = {
        "serving.kserve.io/deploymentMode": str(d.deployment_mode),
        "serving.kserve.io/enable-prometheus-scraping": "true",
        "prometheus.kserve.io/port": str(c.port),
        "prometheus.kserve.io/path": "/metrics",
    }
    predictor: dict[str, Any] = {
        "minReplicas": int(d.min_replicas),
        "maxReplicas": int(d.max_replicas),
        "scaleMetric": str(d.scale_metric),
        "scaleTarget": int(d.scale_target),
        "timeout": int(d.timeout_s),
        # preStop-free: KServe/Knative drain the pod; the server then has its own graceful timeout
        "terminationGracePeriodSeconds": c.grace_s,
        "containers": [
            {
                "name": "kserve-container",
                "image": d.image.ref,
                "imagePullPolicy": str(d.image.pull_policy),
                "command": c.command,
                "args": c.args,
                "ports": [{"containerPort": c.port, "protocol": "TCP"}],
                "env": c.env,
                "resources": resources(d.resources),
                "readinessProbe": _probe(c.readiness_path, d.probes),
                "livenessProbe": {
                    **_probe(c.liveness_path, d.probes),
                    "initialDelaySeconds": int(d.probes.startup_timeout_s) // 4,
                },
            }
        ],
    }
    if d.container_concurrency:
        predictor["containerConcurrency"] = int(d.container_concurrency)
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": str(d.name),
            "namespace": str(d.namespace),
            "labels": labels(d),
            "annotations": annotations,
        },
        "spec": {"predictor": predictor},
    }
    written = [write_yaml(out / "inferenceservice.yaml", isvc)]
    written += monitoring.render(cfg, d, out / "monitoring")
    return written
