"""``aiinfra deploy ray``: a Ray Serve config file (``serve run``/``serve deploy``) and a KubeRay
RayService (ray.io/v1) running the same application on Kubernetes, autoscaled by Ray Serve
(``server.autoscaling.*``) on in-flight requests per replica, with KubeRay adding Ray workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiinfra.deploy import monitoring
from aiinfra.deploy.container import PARAMS, check_port, keys_env, labels
from aiinfra.deploy.output import write_yaml
from aiinfra.errors import ConfigError

IMPORT_PATH = "aiinfra.serving.ray_server:app_builder"


def serve_config(cfg: Any, d: Any) -> dict[str, Any]:
    s = cfg.server
    if str(s.type) != "ray":
        raise ConfigError(
            f"deploy.type=ray renders the server=ray settings, but server={s.type}",
            hint="aiinfra deploy ray server=ray (its replicas and autoscaling: server.autoscaling.*)",
        )
    port = check_port(cfg, d)
    deployment: dict[str, Any] = {
        "name": "AiinfraServer",
        "max_ongoing_requests": int(s.max_ongoing_requests),
        "graceful_shutdown_timeout_s": float(s.graceful_timeout_s),
        "ray_actor_options": {"num_cpus": float(s.replica_cpus)},
    }
    if s.autoscale:
        deployment["autoscaling_config"] = s.autoscaling.as_ray()
    else:
        deployment["num_replicas"] = int(s.num_replicas)
    return {
        "proxy_location": "EveryNode",
        "http_options": {"host": "0.0.0.0", "port": port},
        "applications": [
            {
                "name": str(s.app_name),
                "route_prefix": str(s.route_prefix),
                "import_path": IMPORT_PATH,
                "args": {"params": PARAMS},
                "runtime_env": {"env_vars": {"DO_NOT_TRACK": "1", "AIINFRA_PROJECT_DIR": "/app"}},
                "deployments": [deployment],
            }
        ],
    }


def _container(name: str, d: Any, env: list[dict[str, Any]], cpu: str, memory: str, ports: list[dict]) -> dict:
    return {
        "name": name,
        "image": d.image.ref,
        "imagePullPolicy": str(d.image.pull_policy),
        "env": env,
        "ports": ports,
        "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu, "memory": memory}},
    }


def render(cfg: Any, d: Any, out: Path) -> list[Path]:
    import yaml

    config = serve_config(cfg, d)
    port = config["http_options"]["port"]
    env = [{"name": "AIINFRA_PROJECT_DIR", "value": "/app"}, *keys_env(cfg, d)]
    head_ports = [
        {"name": "gcs-server", "containerPort": 6379},
        {"name": "dashboard", "containerPort": 8265},
        {"name": "client", "containerPort": 10001},
        {"name": "serve", "containerPort": port},
        {"name": "metrics", "containerPort": 8080},
    ]
    worker = _container(
        "ray-worker", d, env, str(d.worker_cpu), str(d.worker_memory), [{"name": "serve", "containerPort": port}]
    )
    worker["lifecycle"] = {"preStop": {"exec": {"command": ["/bin/sh", "-c", "ray stop"]}}}
    service = {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": str(d.name), "namespace": str(d.namespace), "labels": labels(d)},
        "spec": {
            "serveConfigV2": yaml.safe_dump(config, sort_keys=False),
            "rayClusterConfig": {
                "rayVersion": str(d.ray_version),
                "enableInTreeAutoscaling": True,
                "headGroupSpec": {
                    # the head schedules no replicas (num-cpus 0): workers carry the traffic
                    "rayStartParams": {"dashboard-host": "0.0.0.0", "num-cpus": "0"},
                    "template": {
                        "metadata": {"labels": labels(d)},
                        "spec": {
                            "containers": [
                                _container("ray-head", d, env, str(d.head_cpu), str(d.head_memory), head_ports)
                            ]
                        },
                    },
                },
                "workerGroupSpecs": [
                    {
                        "groupName": "replicas",
                        "replicas": int(d.worker_min),
                        "minReplicas": int(d.worker_min),
                        "maxReplicas": int(d.worker_max),
                        "rayStartParams": {},
                        "template": {
                            "metadata": {"labels": labels(d)},
                            "spec": {
                                "terminationGracePeriodSeconds": int(float(cfg.server.graceful_timeout_s) + 10),
                                "containers": [worker],
                            },
                        },
                    }
                ],
            },
        },
    }
    written = [write_yaml(out / "serve_config.yaml", config), write_yaml(out / "rayservice.yaml", service)]
    written += monitoring.render(cfg, d, out / "monitoring")
    return written
