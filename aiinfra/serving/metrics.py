"""Prometheus metrics of the server, in base units (seconds, rows), on a private registry.

Label children are cached: ``Counter.labels()`` costs more than the increment itself, and it runs
on every request.

With several worker processes (``server.workers > 1``) the server sets ``PROMETHEUS_MULTIPROC_DIR``
before the workers start: every worker writes its values to shared files and a scrape of any worker
returns the sum over all of them (gauges: the live workers' sum, or max for the model info).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
INFERENCE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class ServerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        disable_created_metrics()  # the *_created series double the scrape for no operational use
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "aiinfra_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "aiinfra_http_request_duration_seconds",
            "HTTP request latency (seconds)",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inference = Histogram(
            "aiinfra_inference_duration_seconds",
            "forward pass time per batch (seconds)",
            buckets=INFERENCE_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "aiinfra_batch_size_rows", "rows per forward pass (dynamic batching)", buckets=BATCH_BUCKETS, registry=r
        )
        self.predictions = Counter("aiinfra_predictions", "rows predicted", ["model", "version"], registry=r)
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.queue_rows = Gauge(
            "aiinfra_queue_rows", "rows waiting for a forward pass", registry=r, multiprocess_mode="livesum"
        )
        self.inflight = Gauge(
            "aiinfra_inflight_requests",
            "HTTP requests being handled by this process (an autoscaling signal)",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.log_degraded = Gauge(
            "aiinfra_prediction_log_degraded",
            "1 while prediction-log writes fail or spooled rows wait for replay",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.log_spooled = Gauge(
            "aiinfra_prediction_log_spooled_rows",
            "prediction-log rows in server.log_spool_dir, not yet replayed into the log",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.timed_out = Counter(
            "aiinfra_connections_timed_out",
            "connections closed with 408 because their request headers stalled (server.body_timeout_s)",
            registry=r,
        )
        self.log_pending = Gauge(
            "aiinfra_prediction_log_pending_rows",
            "prediction-log rows not yet on disk",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.log_written = Counter("aiinfra_prediction_log_rows", "prediction-log rows written to Parquet", registry=r)
        self.log_errors = Counter("aiinfra_prediction_log_write_errors", "failed prediction-log writes", registry=r)
        self.log_dropped = Counter(
            "aiinfra_prediction_log_dropped_rows",
            "prediction-log rows dropped: buffer full while writes failed (drop/spool) or unwritable at shutdown",
            registry=r,
        )
        self.model_info = Gauge(
            "aiinfra_model_info",
            "the served model (value 1)",
            ["model", "version", "uri"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self._model_labels: tuple[str, str, str] | None = None
        self._gauge_functions: list[tuple[Gauge, Callable[[], float]]] = []
        self.feedback = Counter("aiinfra_feedback_labels", "labels received on /v2/models/{name}/feedback", registry=r)
        self.reloads = Counter("aiinfra_model_reloads", "model reload attempts by result", ["result"], registry=r)
        self.unseen = Counter(
            "aiinfra_unseen_category",
            "values of a categorical or boolean column that training never saw (encoded as unknown)",
            ["column"],
            registry=r,
        )
        self._unseen_children: dict[str, object] = {}
        self._request_children: dict[tuple[str, str, int], object] = {}
        self._latency_children: dict[str, object] = {}
        self._prediction_child = None

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(route, method, str(status))
        child.inc()
        lat = self._latency_children.get(route)
        if lat is None:
            lat = self._latency_children[route] = self.latency.labels(route)
        lat.observe(seconds)

    def observe_batch(self, rows: int, seconds: float) -> None:
        self.batch_size.observe(rows)
        self.inference.observe(seconds)
        if self._prediction_child is not None:
            self._prediction_child.inc(rows)

    def count_unseen(self, counts: dict[str, int]) -> None:
        """``{column: values}`` of a batch that the model's preprocessing had not seen in training."""
        for column, n in counts.items():
            if n:
                child = self._unseen_children.get(column)
                if child is None:
                    child = self._unseen_children[column] = self.unseen.labels(column)
                child.inc(n)

    def set_model(self, name: str, version: str, uri: str) -> None:
        if self._model_labels is not None:
            if self.multiprocess:  # other workers may still serve it: their values decide (livemax)
                self.model_info.labels(*self._model_labels).set(0)
            else:
                self.model_info.remove(*self._model_labels)
        self._model_labels = (name, version, uri)
        self.model_info.labels(name, version, uri).set(1)
        self._prediction_child = self.predictions.labels(name, version)

    def track(
        self,
        queue_rows: Callable[[], float],
        log_pending: Callable[[], float],
        inflight: Callable[[], float] | None = None,
        log_degraded: Callable[[], float] | None = None,
        log_spooled: Callable[[], float] | None = None,
    ) -> None:
        # read at scrape time: no per-request cost (multiprocess: refreshed every second instead)
        pairs = [(self.queue_rows, queue_rows), (self.log_pending, log_pending)]
        pairs += [(g, fn) for g, fn in ((self.inflight, inflight), (self.log_degraded, log_degraded)) if fn]
        if log_spooled is not None:
            pairs.append((self.log_spooled, log_spooled))
        if self.multiprocess:
            self._gauge_functions = pairs
        else:
            for gauge, fn in pairs:
                gauge.set_function(fn)

    def refresh(self) -> None:
        for gauge, fn in self._gauge_functions:
            gauge.set(fn())

    def render(self) -> bytes:
        if not self.multiprocess:
            return generate_latest(self.registry) + self._drift_text()
        self.refresh()
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry) + self._drift_text()

    def publish_drift(self, textfile: str | os.PathLike | None) -> None:
        """Also expose the monitor's latest drift gauges (``<monitor.report_dir>/drift.prom``, written
        by ``aiinfra monitor``) on this server's /metrics, so one scrape covers serving and drift."""
        self._drift_file = textfile
        self._drift_cache: tuple[float, bytes] = (-1.0, b"")

    def _drift_text(self) -> bytes:
        path = getattr(self, "_drift_file", None)
        if not path:
            return b""
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            return b""
        if mtime != self._drift_cache[0]:  # re-read only when the monitor wrote a new verdict
            with open(path, "rb") as f:
                self._drift_cache = (mtime, f.read())
        return self._drift_cache[1]

    def process_exit(self) -> None:
        if self.multiprocess:
            multiprocess.mark_process_dead(os.getpid())
