"""What a serving process has used and done so far, for ``aiinfra costs`` (CPU-seconds and money per
1,000 predictions): one JSON line every ``server.usage_interval_s`` and one at shutdown, appended to
``<paths.logs>/usage/serving-<host>-<pid>.jsonl``. Every process (each of ``server.workers``, each
Ray replica) writes its own file:

    {"time": ISO-8601 UTC, "host", "pid", "model_name", "model_version", "model_uri",
     "usage": Usage.to_dict() of the whole process, "predictions": rows predicted so far,
     "requests": prediction requests so far}

The counters are the server's own Prometheus counters (``aiinfra_predictions``,
``aiinfra_http_requests`` of the prediction routes), read in this process, and cumulative; the
model is the one served when the line is written, so after a hot reload the new version appears on
the next line. A failed write is one warning, never a failed request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from aiinfra.governance.resources import process_usage

log = logging.getLogger("aiinfra.serving")


def usage_dir(logs_dir: str | os.PathLike) -> Path:
    """Where serving usage files live: ``<paths.logs>/usage`` (absolute)."""
    return (Path(logs_dir) / "usage").resolve()


def counter_total(counter: Any, where: Callable[[dict[str, str]], bool] | None = None) -> float:
    """The sum of a Prometheus counter's ``_total`` samples in this process (labels filtered by ``where``)."""
    total = 0.0
    for metric in counter.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and (where is None or where(sample.labels)):
                total += sample.value
    return total


def prediction_routes(endpoints: Iterable[Any]) -> frozenset[tuple[str, str]]:
    """(route template, method) of every prediction endpoint (``Endpoint.predict_kind`` set)."""
    return frozenset((e.path, m) for e in endpoints if e.predict_kind is not None for m in e.methods)


class UsageWriter:
    """Appends this process's usage line; :meth:`run` every ``interval_s``, :meth:`close` at shutdown.

    ``metrics``: the :class:`~aiinfra.serving.metrics.ServerMetrics`; ``holder``: anything with
    ``.current`` (the served model: name, version, uri); ``prediction_routes``: the route templates
    and methods whose requests are predictions (:func:`prediction_routes`; set by the app, which
    knows its endpoint table)."""

    def __init__(
        self,
        logs_dir: str | os.PathLike,
        metrics: Any,
        holder: Any,
        routes: Iterable[tuple[str, str]] = (),
        interval_s: float = 60.0,
    ):
        self.dir = usage_dir(logs_dir)
        self.metrics = metrics
        self.holder = holder
        self.routes = frozenset(routes)
        self.interval_s = float(interval_s)
        self.host = socket.gethostname()
        self.lines = 0
        self._warned = False

    @property
    def path(self) -> Path:
        # the pid at write time: a process forked after this object was built writes its own file
        return self.dir / f"serving-{self.host}-{os.getpid()}.jsonl"

    def record(self) -> dict[str, Any]:
        model = self.holder.current
        routes = self.routes
        return {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "host": self.host,
            "pid": os.getpid(),
            "model_name": model.name,
            "model_version": str(model.version),
            "model_uri": model.uri,
            "usage": process_usage().to_dict(),
            "predictions": int(counter_total(self.metrics.predictions)),
            "requests": int(
                counter_total(self.metrics.requests, lambda labels: (labels["route"], labels["method"]) in routes)
            ),
        }

    def write(self) -> bool:
        """Append one line; False (and one warning per process) if it could not be written."""
        try:
            line = orjson.dumps(self.record()) + b"\n"
            self.dir.mkdir(parents=True, exist_ok=True)
            # one write() of a whole line in append mode: lines of one file never interleave
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except Exception as exc:  # noqa: BLE001 - accounting must never fail serving
            if not self._warned:
                self._warned = True
                log.warning("serving usage not written to %s (%s); serving goes on", self.path, exc)
            return False
        self.lines += 1
        return True

    async def run(self) -> None:
        """Every ``interval_s`` (the app's lifespan starts it and cancels it at shutdown)."""
        while True:
            await asyncio.sleep(self.interval_s)
            self.write()

    def close(self) -> bool:
        """The shutdown line: the process's final totals."""
        return self.write()
