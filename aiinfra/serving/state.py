"""What the HTTP server's handlers share in one process: the model, batcher, logs, keys, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from aiinfra.serving import protocol, retention
from aiinfra.serving.auth import KeyStore
from aiinfra.serving.batcher import Batcher
from aiinfra.serving.feedback import FeedbackStore
from aiinfra.serving.guard import BodyGuard
from aiinfra.serving.metrics import ServerMetrics
from aiinfra.serving.predlog import PredictionLog
from aiinfra.serving.privacy import LogPrivacy
from aiinfra.serving.reload import ModelHolder
from aiinfra.serving.runtime import ModelLoader, ServedModel
from aiinfra.serving.usage import UsageWriter
from aiinfra.storage import urls


def prediction_log_dir(cfg: Any) -> str:
    """``server.log_dir``, or ``<paths.logs>/predictions``; absolute (an object-store URL as it is)."""
    return urls.absolute(cfg.server.log_dir or urls.join(str(cfg.paths.logs), "predictions"))


def feedback_dir(cfg: Any) -> str:
    """Where ``POST /v2/models/{name}/feedback`` stores labels (aiinfra.serving.feedback)."""
    return urls.absolute(cfg.server.feedback_dir or urls.join(str(cfg.paths.logs), "feedback"))


class AccessLog:
    """JSON lines, buffered; flushed every second and at shutdown (not a syscall per request)."""

    def __init__(self, target: str | None):
        self.stream = None
        if not target:
            return
        if target == "-":
            # our own buffer on fd 2: sys.stderr.buffer hands every line to the kernel at once
            # (measured: a write syscall per request, ~5% of the throughput)
            sys.stderr.flush()
            self.stream = open(sys.stderr.fileno(), "ab", buffering=256 * 1024, closefd=False)  # noqa: SIM115
        else:
            os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
            self.stream = open(target, "ab", buffering=256 * 1024)  # noqa: SIM115 (closed at shutdown)

    def write(self, record: dict[str, Any]) -> None:
        if self.stream is not None:
            self.stream.write(orjson.dumps(record) + b"\n")

    def flush(self) -> None:
        if self.stream is not None:
            with contextlib.suppress(OSError, ValueError):  # a closed or broken stream: nothing to save
                self.stream.flush()

    def close(self) -> None:
        self.flush()
        if self.stream is not None:
            self.stream.close()  # fd 2 itself stays open (closefd=False)


class ServingState:
    """Everything the handlers share; one per process. ``server_cfg`` is the typed ``cfg.server``."""

    def __init__(self, cfg: Any, loader: ModelLoader, model: ServedModel):
        server_cfg = self.server_cfg = cfg.server
        self.metrics = ServerMetrics()
        report_dir = cfg.monitor.report_dir if cfg.monitor is not None else None
        self.metrics.publish_drift(os.path.join(str(report_dir), "drift.prom") if report_dir else None)
        self.holder = ModelHolder(loader, model, self.metrics)
        self.metrics.set_model(model.name, model.version, model.uri)
        self.keys = KeyStore.from_config(server_cfg)
        # server.log_privacy: one clear error now for an unknown column or a missing key; applied
        # as each part of the prediction and feedback logs is built (nothing unprotected on disk)
        self.log_privacy = LogPrivacy.from_config(server_cfg, model.features)
        self.predlog = None
        if server_cfg.prediction_log:
            self.predlog = PredictionLog(
                prediction_log_dir(cfg),
                model.features,
                flush_rows=server_cfg.log_flush_rows,
                flush_interval_s=server_cfg.log_flush_interval_s,
                on_written=self.metrics.log_written.inc,
                on_error=self.metrics.log_errors.inc,
                on_dropped=self.metrics.log_dropped.inc,
                policy=str(server_cfg.log_failure_policy),
                buffer_rows=server_cfg.log_buffer_rows,
                spool_dir=str(Path(server_cfg.log_spool_dir).resolve()) if server_cfg.log_spool_dir else None,
                privacy=self.log_privacy,
            )
        self.batcher = Batcher(
            self.holder.get,
            max_batch_size=server_cfg.max_batch_size,
            max_wait_ms=server_cfg.max_wait_ms,
            max_queue_rows=server_cfg.max_queue_rows,
            inference=server_cfg.inference,
            on_batch=self.metrics.observe_batch,
            on_delivered=self._log_batch if self.predlog is not None else None,
            on_unseen=self.metrics.count_unseen,
        )
        self.inflight = 0  # requests being handled by this process (the Gate counts them)
        self.body_guard = BodyGuard(server_cfg.body_timeout_s)
        log = self.predlog
        self.metrics.track(
            lambda: self.batcher.pending_rows,
            lambda: log.pending_rows if log else 0,
            inflight=lambda: self.inflight,
            log_degraded=lambda: 1 if log is not None and (log.failing or log.spooled_rows) else 0,
            log_spooled=lambda: log.spooled_rows if log else 0,
        )
        self.feedback = FeedbackStore(feedback_dir(cfg), privacy=self.log_privacy)
        # server.log_privacy.retention_days: old date partitions deleted now, then hourly (audited)
        self.retention = retention.start(cfg)
        self.access = AccessLog(server_cfg.access_log)
        # CPU, memory and predictions of this process for `aiinfra costs` (the app sets its routes)
        self.usage = UsageWriter(cfg.paths.logs, self.metrics, self.holder, interval_s=server_cfg.usage_interval_s)
        self.ready = True
        self.tasks: list[asyncio.Task] = []
        self._rid_prefix = os.urandom(4).hex()
        self._rid = 0
        self.spec_cache: dict[str, bytes] = {}

    def _log_batch(
        self, model: Any, request_ids: list[str], counts: list[int], x: Any, proba: np.ndarray, index: Any
    ) -> None:
        """One prediction-log append per forward pass (the batcher calls it for the answered rows).
        ``x``: float32 rows, or a prepared raw batch (its typed columns are logged); regression
        (``index`` None): the prediction is the value and there is no score."""
        if index is None:
            labels, scores = proba, None
        else:
            labels, scores = model.classes[index], proba[np.arange(proba.shape[0]), index]
        self.predlog.append(request_ids, model.name, model.version, x, labels, scores, model.features, counts)

    def request_id(self, given: str | None) -> str:
        if protocol.usable_request_id(given):
            return given
        self._rid += 1
        return f"{self._rid_prefix}-{self._rid:x}"
