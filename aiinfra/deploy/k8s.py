"""``aiinfra deploy k8s``: Deployment, Service, autoscaler (HPA on CPU, or KEDA on the server's
in-flight/queue metric), PodDisruptionBudget, ServiceMonitor, and the Prometheus rules and
Grafana dashboard (:mod:`aiinfra.deploy.monitoring`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiinfra.deploy import monitoring
from aiinfra.deploy.container import Container, container, labels, prometheus_annotations
from aiinfra.deploy.output import write_yaml

#: the PromQL an autoscaler scales on, per replica (the server exports both gauges)
SCALE_QUERIES = {
    "inflight": 'sum(aiinfra_inflight_requests{{namespace="{ns}",service="{name}"}})',
    "queue": 'sum(aiinfra_queue_rows{{namespace="{ns}",service="{name}"}})',
}


def resources(r: Any) -> dict[str, Any]:
    requests = {"cpu": str(r.cpu_request), "memory": str(r.memory_request)}
    limits: dict[str, Any] = {"memory": str(r.memory_limit)}
    if r.cpu_limit:
        limits["cpu"] = str(r.cpu_limit)
    if r.gpu:
        limits["nvidia.com/gpu"] = int(r.gpu)
    return {"requests": requests, "limits": limits}


def probe(path: str, port: int, p: Any, *, startup: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": int(p.period_s),
        "timeoutSeconds": int(p.timeout_s),
        "failureThreshold": int(p.failure_threshold),
    }
    if startup:  # liveness waits until the model has loaded, however long that takes (up to startup_timeout_s)
        out["failureThreshold"] = max(1, -(-int(p.startup_timeout_s) // int(p.period_s)))
    return out


def container_spec(c: Container, d: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "server",
        "image": d.image.ref,
        "imagePullPolicy": str(d.image.pull_policy),
        "command": c.command,
        "args": c.args,
        "ports": [{"name": "http", "containerPort": c.port, "protocol": "TCP"}],
        "env": c.env,
        "resources": resources(d.resources),
        "startupProbe": probe(c.liveness_path, c.port, d.probes, startup=True),
        "livenessProbe": probe(c.liveness_path, c.port, d.probes),
        "readinessProbe": probe(c.readiness_path, c.port, d.probes),
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": False,  # the prediction log writes under /app/logs
            "capabilities": {"drop": ["ALL"]},
        },
    }
    return spec


def render(cfg: Any, d: Any, out: Path) -> list[Path]:
    prestop = int(d.prestop_sleep_s)
    c = container(cfg, d, "k8s", prestop_s=prestop)
    meta = {"name": str(d.name), "namespace": str(d.namespace), "labels": labels(d)}
    selector = {"app.kubernetes.io/name": str(d.name)}
    pod_annotations = prometheus_annotations(c.port) if d.prometheus_annotations else {}
    spec = container_spec(c, d)
    if prestop:
        # the Service stops sending traffic a moment after the pod is marked Terminating; sleeping
        # before SIGTERM lets those last requests arrive while the server still accepts them
        spec["lifecycle"] = {"preStop": {"sleep": {"seconds": prestop}}}
    a = d.autoscaling
    deployment: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": labels(d), "annotations": pod_annotations},
                "spec": {
                    # preStop + server.graceful_timeout_s + 5 s to flush the prediction log
                    "terminationGracePeriodSeconds": c.grace_s,
                    "securityContext": {"runAsNonRoot": True},
                    "containers": [spec],
                },
            },
        },
    }
    if not a.enabled:
        deployment["spec"]["replicas"] = int(d.replicas)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {**meta, "annotations": pod_annotations},
        "spec": {
            "type": str(d.service_type),
            "selector": selector,
            "ports": [{"name": "http", "port": int(d.service_port), "targetPort": "http", "protocol": "TCP"}],
        },
    }
    docs: list[tuple[str, dict[str, Any]]] = [("deployment.yaml", deployment), ("service.yaml", service)]
    if a.enabled:
        docs.append(autoscaler(d, meta))
    if d.pdb_min_available:
        docs.append(
            (
                "pdb.yaml",
                {
                    "apiVersion": "policy/v1",
                    "kind": "PodDisruptionBudget",
                    "metadata": meta,
                    "spec": {"minAvailable": int(d.pdb_min_available), "selector": {"matchLabels": selector}},
                },
            )
        )
    if d.service_monitor:
        docs.append(("servicemonitor.yaml", service_monitor(d, meta, selector)))
    written = [write_yaml(out / name, doc) for name, doc in docs]
    written += monitoring.render(cfg, d, out / "monitoring")
    return written


def autoscaler(d: Any, meta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    a = d.autoscaling
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": str(d.name)}
    if a.metric == "cpu":
        return (
            "hpa.yaml",
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": meta,
                "spec": {
                    "scaleTargetRef": target,
                    "minReplicas": max(1, int(a.min_replicas)),
                    "maxReplicas": int(a.max_replicas),
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {"type": "Utilization", "averageUtilization": int(a.target)},
                            },
                        }
                    ],
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": int(a.scale_down_stabilization_s)}},
                },
            },
        )
    # KEDA ScaledObject: KEDA creates (and owns) the HPA; the metric is per replica (AverageValue)
    query = SCALE_QUERIES[str(a.metric)].format(ns=d.namespace, name=d.name)
    return (
        "keda-scaledobject.yaml",
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": meta,
            "spec": {
                "scaleTargetRef": {"name": str(d.name)},
                "minReplicaCount": int(a.min_replicas),
                "maxReplicaCount": int(a.max_replicas),
                "pollingInterval": 15,
                "cooldownPeriod": int(a.scale_down_stabilization_s),
                "advanced": {
                    "horizontalPodAutoscalerConfig": {
                        "behavior": {"scaleDown": {"stabilizationWindowSeconds": int(a.scale_down_stabilization_s)}}
                    }
                },
                "triggers": [
                    {
                        "type": "prometheus",
                        "metricType": "AverageValue",
                        "metadata": {
                            "serverAddress": str(a.prometheus_url),
                            "query": query,
                            "threshold": f"{float(a.target):g}",
                        },
                    }
                ],
            },
        },
    )


def service_monitor(d: Any, meta: dict[str, Any], selector: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": selector},
            "namespaceSelector": {"matchNames": [str(d.namespace)]},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": str(d.scrape_interval)}],
        },
    }
