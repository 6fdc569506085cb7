"""Config schemas of the deploy targets (``conf/deploy/*.yaml``) and their rules.

Import-light: validation imports this before anything heavy. Rules that need only the deploy
section (min > max replicas, a missing Secret name) are ``check()``; rules that compare the
deploy settings with the server's own (its port, its route table) run at render time
(:mod:`aiinfra.deploy.container`), where both are known.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from aiinfra.config.checks import at_least, fail, require


class TorchBuild(StrEnum):
    cpu = "cpu"  # the CPU wheel (download.pytorch.org/whl/cpu): a ~200 MB image layer
    cuda = "cuda"  # a CUDA wheel (download.pytorch.org/whl/<image.cuda>); GPU nodes


class ModelSource(StrEnum):
    baked = "baked"  # the model directory is copied into the image: no registry access at start
    pull = "pull"  # the server resolves server.model_uri (models:/name@alias) from MLflow at start


class ScaleMetric(StrEnum):
    """What the autoscaler scales on."""

    cpu = "cpu"  # CPU utilisation (a plain HPA)
    inflight = "inflight"  # aiinfra_inflight_requests per replica (KEDA on Prometheus)
    queue = "queue"  # aiinfra_queue_rows per replica (KEDA on Prometheus)


@dataclass
class ImageRef:
    """The image the manifests run (what ``aiinfra deploy image`` builds and you push)."""

    repository: str = "ghcr.io/example/aiinfra-demo"
    tag: str = "0.1.0"
    pull_policy: str = "IfNotPresent"

    def check(self) -> None:
        require(bool(self.repository) and " " not in self.repository, "repository", "must name an image repository")
        require(bool(self.tag) and ":" not in self.tag, "tag", f"must be a tag without ':', got {self.tag!r}")
        require(
            self.pull_policy in ("Always", "IfNotPresent", "Never"),
            "pull_policy",
            f"must be Always, IfNotPresent or Never, got {self.pull_policy!r}",
        )

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"


@dataclass
class Resources:
    cpu_request: str = "500m"
    memory_request: str = "512Mi"
    cpu_limit: str | None = None  # null: no CPU limit (throttling hurts the p99 more than it saves)
    memory_limit: str = "1Gi"
    gpu: int = 0  # nvidia.com/gpu per replica (use with image.torch=cuda)

    def check(self) -> None:
        at_least(self, 0, "gpu")
        for key in ("cpu_request", "memory_request", "cpu_limit", "memory_limit"):
            value = getattr(self, key)
            require(value is None or bool(str(value).strip()), key, "must be a Kubernetes quantity, e.g. 500m or 1Gi")


@dataclass
class Probes:
    """Kubernetes probes; the paths must be routes of the server (checked at render time)."""

    liveness_path: str = "/v2/health/live"
    readiness_path: str = "/v2/health/ready"
    period_s: int = 5
    timeout_s: int = 2
    failure_threshold: int = 3
    startup_timeout_s: int = 120  # model load: a startup probe allows this long before liveness applies

    def check(self) -> None:
        at_least(self, 1, "period_s", "timeout_s", "failure_threshold", "startup_timeout_s")


@dataclass
class Autoscaling:
    enabled: bool = True
    min_replicas: int = 1
    max_replicas: int = 4
    metric: ScaleMetric = ScaleMetric.inflight
    # per replica: in-flight requests (metric=inflight), queued rows (queue), or CPU % (cpu).
    # inflight 16: measured on this machine (docs/deploying.md): one replica's req/s stops growing there
    target: float = 16.0
    prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090"  # what KEDA queries
    scale_down_stabilization_s: int = 120

    def check(self) -> None:
        at_least(self, 0, "min_replicas", "scale_down_stabilization_s")
        at_least(self, 1, "max_replicas")
        if self.min_replicas > self.max_replicas:
            fail(
                "min_replicas",
                f"is {self.min_replicas}, more than max_replicas {self.max_replicas}",
                hint="min_replicas <= max_replicas, e.g. min_replicas=1 max_replicas=4",
            )
        require(self.target > 0, "target", f"must be > 0, got {self.target!r}")
        if self.metric is ScaleMetric.cpu:
            require(self.target <= 100, "target", f"is a CPU percentage with metric=cpu: 1..100, got {self.target!r}")


@dataclass
class SecretRef:
    """The Kubernetes Secret holding the API keys (``server.api_keys_env``'s value)."""

    name: str | None = "aiinfra-api-keys"
    key: str = "api-keys"  # the Secret's data key


@dataclass
class Alerts:
    """Thresholds of the Prometheus alert rules (monitoring/prometheus-rules.yaml)."""

    p99_latency_s: float = 0.25
    error_ratio: float = 0.01  # 5xx / all requests
    rejected_ratio: float = 0.01  # 503 (queue full) / all requests
    drift_share: float = 0.5  # aiinfra_drift_share above this (the monitor's verdict on the server's scrape)
    window: str = "5m"  # rate window of the ratio rules
    for_: str = "5m"  # how long a condition holds before the alert fires
    evaluation_interval: str = "30s"

    def check(self) -> None:
        for key in ("p99_latency_s", "error_ratio", "rejected_ratio"):
            require(getattr(self, key) > 0, key, f"must be > 0, got {getattr(self, key)!r}")
        require(0 < self.drift_share <= 1, "drift_share", f"must be in (0, 1], got {self.drift_share!r}")
        for key in ("window", "for_", "evaluation_interval"):
            value = str(getattr(self, key))
            require(
                value[:-1].isdigit() and value[-1] in "smh" or value[:-2].isdigit() and value.endswith("ms"),
                key,
                f"must be a Prometheus duration such as 30s or 5m, got {value!r}",
            )


@dataclass
class DeployConfig:
    """What every target shares: names, the image, the container's port and the alert thresholds."""

    type: str = ""
    out: str | None = None  # null: deploy/<type>
    name: str = "aiinfra"  # the Kubernetes object names and the app label
    namespace: str = "default"
    image: ImageRef = field(default_factory=ImageRef)
    # the port the container listens on: null means server.port; anything else must equal it
    port: int | None = None
    # the server's settings inside the container (Hydra overrides of the server group)
    server_overrides: list[str] = field(default_factory=list)
    api_keys_secret: SecretRef = field(default_factory=SecretRef)
    alerts: Alerts = field(default_factory=Alerts)

    def check(self) -> None:
        ok = bool(self.name) and len(self.name) <= 52 and all(c.isalnum() or c == "-" for c in self.name)
        require(
            ok and self.name == self.name.lower() and self.name[0].isalpha() and self.name[-1].isalnum(),
            "name",
            f"must be a DNS label (lower-case letters, digits, '-', at most 52), got {self.name!r}",
        )
        if self.port is not None:
            require(1 <= self.port <= 65535, "port", f"must be between 1 and 65535, got {self.port}")


@dataclass
class ImageDeployConfig(DeployConfig):
    type: str = "image"
    base_image: str = "python:3.11-slim"
    torch: TorchBuild = TorchBuild.cpu
    cuda: str = "cu124"  # the PyTorch wheel index of image.torch=cuda
    model: ModelSource = ModelSource.baked
    uid: int = 10001  # the non-root user the server runs as
    extra_packages: list[str] = field(default_factory=list)  # pinned requirement lines added to the lock

    def check(self) -> None:
        super().check()
        at_least(self, 1, "uid")
        require(self.cuda.startswith("cu"), "cuda", f"must be a PyTorch CUDA index such as cu124, got {self.cuda!r}")
        for i, line in enumerate(self.extra_packages):
            require("==" in line, f"extra_packages[{i}]", f"must be pinned (name==version), got {line!r}")


@dataclass
class K8sDeployConfig(DeployConfig):
    type: str = "k8s"
    replicas: int = 2  # without autoscaling (or the HPA's start)
    resources: Resources = field(default_factory=Resources)
    probes: Probes = field(default_factory=Probes)
    autoscaling: Autoscaling = field(default_factory=Autoscaling)
    pdb_min_available: int = 1  # PodDisruptionBudget; 0: none
    service_type: str = "ClusterIP"
    service_port: int = 80
    prometheus_annotations: bool = True
    service_monitor: bool = True  # a monitoring.coreos.com/v1 ServiceMonitor (Prometheus Operator)
    scrape_interval: str = "15s"
    prestop_sleep_s: int = 5  # preStop: endpoints are removed from the Service before SIGTERM

    def check(self) -> None:
        super().check()
        at_least(self, 0, "replicas", "pdb_min_available", "prestop_sleep_s")
        require(
            1 <= self.service_port <= 65535, "service_port", f"must be between 1 and 65535, got {self.service_port}"
        )
        require(
            self.service_type in ("ClusterIP", "NodePort", "LoadBalancer"),
            "service_type",
            f"must be ClusterIP, NodePort or LoadBalancer, got {self.service_type!r}",
        )
        top = self.autoscaling.max_replicas if self.autoscaling.enabled else self.replicas
        if self.pdb_min_available and self.pdb_min_available >= max(top, 1) and top > 0:
            fail(
                "pdb_min_available",
                f"is {self.pdb_min_available} with at most {top} replicas: no pod could ever be evicted",
                hint="keep it below the replica count (or 0 for no PodDisruptionBudget)",
            )


class KServeScaleMetric(StrEnum):
    concurrency = "concurrency"  # in-flight requests per pod (Knative's KPA; serverless mode)
    rps = "rps"
    cpu = "cpu"
    memory = "memory"


@dataclass
class KServeDeployConfig(DeployConfig):
    type: str = "kserve"
    deployment_mode: str = "Serverless"  # Serverless (Knative) | RawDeployment (HPA)
    min_replicas: int = 1
    max_replicas: int = 4
    scale_metric: KServeScaleMetric = KServeScaleMetric.concurrency
    scale_target: int = 16  # per pod; concurrency 16 = the in-flight target measured here (docs/deploying.md)
    container_concurrency: int = 0  # hard limit per pod; 0: none
    timeout_s: int = 60
    resources: Resources = field(default_factory=Resources)
    probes: Probes = field(default_factory=Probes)

    def check(self) -> None:
        super().check()
        at_least(self, 0, "min_replicas", "container_concurrency")
        at_least(self, 1, "max_replicas", "scale_target", "timeout_s")
        if self.min_replicas > self.max_replicas:
            fail(
                "min_replicas",
                f"is {self.min_replicas}, more than max_replicas {self.max_replicas}",
                hint="min_replicas <= max_replicas",
            )
        require(
            self.deployment_mode in ("Serverless", "RawDeployment"),
            "deployment_mode",
            f"must be Serverless or RawDeployment, got {self.deployment_mode!r}",
        )


@dataclass
class RayDeployConfig(DeployConfig):
    type: str = "ray"
    # the Ray Serve application (serve_config.yaml, and the RayService's serveConfigV2) takes the
    # replicas' settings from server=ray (server.autoscaling.*, server.replica_cpus): one source
    ray_version: str = "2.60.0"  # the image's ray[serve] (KubeRay starts its head/workers with it)
    head_cpu: str = "1"
    head_memory: str = "2Gi"
    worker_cpu: str = "2"
    worker_memory: str = "2Gi"
    worker_min: int = 1
    worker_max: int = 4

    def check(self) -> None:
        super().check()
        at_least(self, 0, "worker_min")
        at_least(self, 1, "worker_max")
        if self.worker_min > self.worker_max:
            fail("worker_min", f"is {self.worker_min}, more than worker_max {self.worker_max}")
