"""Config schema of ``server=ray``: the HTTP server's settings plus Ray Serve's deployment options.

Import-light (no ray): validation imports it before anything heavy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiinfra.config.checks import at_least, fail, require
from aiinfra.serving.schema import HttpServerConfig


@dataclass
class RayAutoscaling:
    """Ray Serve's ``autoscaling_config`` (names as Ray spells them)."""

    min_replicas: int = 1
    initial_replicas: int | None = None
    max_replicas: int = 4
    target_ongoing_requests: float = 16.0  # in-flight requests per replica (measured: docs/deploying.md)
    upscale_delay_s: float = 3.0
    downscale_delay_s: float = 30.0
    look_back_period_s: float = 30.0  # the window of in-flight samples a decision averages (Ray's default)

    def check(self) -> None:
        at_least(self, 0, "min_replicas", "upscale_delay_s", "downscale_delay_s")
        at_least(self, 1, "max_replicas")
        if self.min_replicas > self.max_replicas:
            fail(
                "min_replicas",
                f"is {self.min_replicas}, more than max_replicas {self.max_replicas}",
                hint="min_replicas <= max_replicas",
            )
        if self.initial_replicas is not None and not self.min_replicas <= self.initial_replicas <= self.max_replicas:
            fail("initial_replicas", f"must be within [min_replicas, max_replicas], got {self.initial_replicas}")
        require(self.target_ongoing_requests > 0, "target_ongoing_requests", "must be > 0")
        require(self.look_back_period_s > 0, "look_back_period_s", "must be > 0")

    def as_ray(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        if out["initial_replicas"] is None:
            del out["initial_replicas"]
        return out


@dataclass
class RayServerConfig(HttpServerConfig):
    """``aiinfra serve server=ray``: every replica runs the HTTP server's app (same routes, batching,
    auth, prediction log, metrics, reload) inside a Ray Serve deployment behind Ray's HTTP proxy,
    which listens on ``host``/``port``."""

    type: str = "ray"
    address: str | None = None  # an existing Ray cluster ("auto", "ray://host:10001"); null: start one here
    num_cpus: float | None = None  # CPUs of a Ray instance started here; null: all
    app_name: str = "aiinfra"
    route_prefix: str = "/"
    replica_cpus: float = 1.0  # logical CPUs per replica (0.5: two replicas per core)
    num_replicas: int = 1  # without autoscaling
    autoscale: bool = True
    autoscaling: RayAutoscaling = field(default_factory=RayAutoscaling)
    max_ongoing_requests: int = 256  # per replica; beyond: Ray queues them in the proxy
    graceful_shutdown_wait_loop_s: float = 0.5  # how often a stopping replica checks for in-flight requests

    def check(self) -> None:
        super().check()
        require(self.replica_cpus > 0, "replica_cpus", f"must be > 0, got {self.replica_cpus!r}")
        at_least(self, 1, "num_replicas", "max_ongoing_requests")
        require(self.route_prefix.startswith("/"), "route_prefix", f"must start with '/', got {self.route_prefix!r}")
        if self.num_cpus is not None:
            require(self.num_cpus > 0, "num_cpus", f"must be > 0, got {self.num_cpus!r}")
        if self.workers != 1:
            fail("workers", "is not used with server=ray: Ray runs replicas", hint="scale with server.autoscaling.*")
