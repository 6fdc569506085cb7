"""``aiinfra serve server=ray``: the HTTP server's app in every replica of a Ray Serve deployment.

Each replica builds the same :class:`~aiinfra.serving.state.ServingState` and app as ``server=http``
(``aiinfra.serving.server.build_state`` + ``aiinfra.serving.app.build_app``): the same routes and
protocols, batching, validation, API keys, prediction log (one part file per replica and flush, all
under ``server.log_dir``), metrics and alias reload (every replica polls ``server.reload_interval_s``).
Ray's proxy listens on ``server.host``/``server.port`` and routes each request to a replica; Ray
Serve's autoscaler adds and removes replicas on the in-flight requests per replica
(``server.autoscaling.target_ongoing_requests``).

Metrics: the replicas on a node share one Prometheus multiprocess directory, so /metrics (answered
by any replica) reports all of them. Every response carries ``X-Aiinfra-Replica``.

SIGTERM: the application is deleted, which lets each replica finish its in-flight requests
(``server.graceful_timeout_s``) and run the app's shutdown (batcher drained, prediction log
flushed); then Serve (and a Ray instance started here) shut down and ``serve`` returns 0.
"""

from __future__ import annotations

import logging
import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

import ray
from ray import serve

from aiinfra.config.typed import to_yaml

log = logging.getLogger("aiinfra.serving")

DEPLOYMENT = "AiinfraServer"
REPLICA_HEADER = b"x-aiinfra-replica"


class _ReplicaApp:
    """The server's ASGI app as Ray hands it requests: the route prefix taken off the path (the
    app's route table is absolute) and the replica named in a header."""

    def __init__(self, app: Any, replica: str):
        self.app = app
        self.header = (REPLICA_HEADER, replica.encode())

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        root = scope.get("root_path") or ""
        path = scope["path"]
        if root and root != "/" and path.startswith(root):
            scope = {**scope, "path": path[len(root) :] or "/", "raw_path": None, "root_path": ""}

        async def send_named(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        await self.app(scope, receive, send_named)


@serve.ingress()
class AiinfraServer:
    """One replica: the validated config (as YAML), the project directory, the metrics directory."""

    def __init__(self, spec: str, project_dir: str, metrics_dir: str | None):
        from omegaconf import OmegaConf

        from aiinfra.config.validate import validate
        from aiinfra.plugins.manager import get_plugins
        from aiinfra.runner import LOG_FORMAT, setup_environment

        setup_environment()
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, datefmt="%H:%M:%S")
        os.chdir(project_dir)  # the config's relative paths (logs/, reports/) are the project's
        if metrics_dir:
            os.makedirs(metrics_dir, exist_ok=True)
        cfg = validate(OmegaConf.create(spec), get_plugins().registry)
        from aiinfra.serving.server import build_state

        self.state = build_state(cfg)
        try:
            self.replica = serve.get_replica_context().replica_id.unique_id
        except Exception:  # noqa: BLE001 (outside a replica: tests build it directly)
            self.replica = f"pid-{os.getpid()}"

    def __serve_build_asgi_app__(self) -> Any:
        from aiinfra.serving.app import build_app

        return _ReplicaApp(build_app(self.state), self.replica)


def application(cfg: Any, metrics_dir: str | None = None) -> Any:
    """The Ray Serve application of ``cfg`` (``server=ray``): one deployment, autoscaled."""
    s = cfg.server
    options: dict[str, Any] = dict(
        name=DEPLOYMENT,
        max_ongoing_requests=int(s.max_ongoing_requests),
        ray_actor_options={
            "num_cpus": float(s.replica_cpus),
            "runtime_env": {"env_vars": _replica_env(metrics_dir)},
        },
        graceful_shutdown_timeout_s=float(s.graceful_timeout_s),
        graceful_shutdown_wait_loop_s=float(s.graceful_shutdown_wait_loop_s),
        health_check_period_s=2.0,
        # Ray's own per-request log line costs the replica more than the forward pass of a small
        # model; the app's access log (server.access_log) is the one aiinfra documents
        logging_config={"enable_access_log": False, "log_level": "WARNING"},
    )
    if s.autoscale:
        options["autoscaling_config"] = s.autoscaling.as_ray()
    else:
        options["num_replicas"] = int(s.num_replicas)
    return serve.deployment(AiinfraServer).options(**options).bind(to_yaml(cfg), str(Path.cwd()), metrics_dir)


def _replica_env(metrics_dir: str | None) -> dict[str, str]:
    env = {"DO_NOT_TRACK": "1", "PYTHONUNBUFFERED": "1"}
    if metrics_dir:
        env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    return env


def app_builder(args: dict[str, Any]) -> Any:
    """``import_path`` of a Ray Serve config file (``aiinfra deploy ray``): ``args: {params: FILE}``
    names the composed config (the image's /app/params.yaml), as ``aiinfra serve --params`` reads it."""
    from aiinfra.runner import load_config

    cfg = load_config(list(args.get("overrides") or []), str(args["params"]))
    return application(cfg, args.get("metrics_dir") or tempfile.mkdtemp(prefix="aiinfra-metrics-"))


def serve_ray(cfg: Any) -> int:
    """Run the application until SIGTERM/SIGINT; then drain and return 0."""
    from aiinfra.serving.auth import KeyStore, check_bind

    s = cfg.server
    keys = KeyStore.from_config(s)  # a malformed key or an open bind fails here, before Ray starts
    check_bind(s.host, keys, s.allow_unauthenticated)
    started_ray = s.address is None and not ray.is_initialized()  # ours to stop; a cluster's Serve is not
    if not ray.is_initialized():
        ray.init(address=s.address, num_cpus=s.num_cpus, include_dashboard=False, log_to_driver=False)
    metrics_dir = tempfile.mkdtemp(prefix="aiinfra-metrics-")
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        serve.start(http_options={"host": s.host, "port": int(s.port)})
        serve.run(application(cfg, metrics_dir), name=s.app_name, route_prefix=s.route_prefix)
        log.info(
            "serving on http://%s:%d%s with Ray Serve (replicas: %s)",
            s.host,
            s.port,
            s.route_prefix if s.route_prefix != "/" else "",
            f"{s.autoscaling.min_replicas}..{s.autoscaling.max_replicas}" if s.autoscale else s.num_replicas,
        )
        print(f"aiinfra: ray serve app '{s.app_name}' ready", flush=True)
        while not stop.wait(0.5):
            pass
        log.info("stopping: draining the replicas of '%s' (up to %.0f s)", s.app_name, s.graceful_timeout_s)
        serve.delete(s.app_name, _blocking=True)  # each replica finishes its requests and flushes its log
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if started_ray:
            serve.shutdown()
            ray.shutdown()
    log.info("ray serve app '%s' stopped", s.app_name)
    return 0
