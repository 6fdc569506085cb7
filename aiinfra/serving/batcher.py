"""Dynamic batching: requests that arrive together share one forward pass.

Requests append their rows to a pending list; a flush is scheduled for the next turn of the event
loop (``max_wait_ms=0``: everything that arrived in this turn) or after ``max_wait_ms``. A flush
takes up to ``max_batch_size`` rows, runs the model once and hands each request its slice.

The queue is bounded in rows: when it is full, :class:`QueueFull` becomes a 503 with Retry-After,
so memory never grows with load. ``inference="inline"`` runs the forward pass on the event loop
(a tiny MLP takes tens of microseconds: a thread hand-off would cost more than the compute);
``"thread"`` runs it in one worker thread for models whose forward pass takes milliseconds.

A decoder with ``prepare`` (raw rows checked against a data contract and encoded) gets the whole
batch before the forward pass; the requests it refuses fail alone, with its exception, and the
others are predicted. A regression model's "probabilities" are its predicted values and its
``index`` is None.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from aiinfra.serving.runtime import predict_batch

log = logging.getLogger("aiinfra.serving")


class QueueFull(Exception):
    """The pending rows would exceed ``max_queue_rows``."""


class ShuttingDown(Exception):
    """The batcher no longer accepts work."""


class BatchResult:
    __slots__ = ("model", "proba", "index")

    def __init__(self, model: Any, proba: np.ndarray, index: np.ndarray | None):
        self.model = model  # the ServedModel that produced this slice (reload-safe)
        self.proba = proba  # class probabilities; a regression model's predicted values
        self.index = index  # argmax class index per row; None for regression


class Batcher:
    def __init__(
        self,
        get_model: Callable[[], Any],
        *,
        max_batch_size: int,
        max_wait_ms: float,
        max_queue_rows: int,
        inference: str = "inline",
        on_batch: Callable[[int, float], None] | None = None,
        on_delivered: Callable[..., None] | None = None,
        on_unseen: Callable[[dict[str, int]], None] | None = None,
    ):
        self.get_model = get_model
        # ranges: HttpServerConfig.check()
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue_rows = max_queue_rows
        self.threaded = inference == "thread"
        self.on_batch = on_batch
        # on_delivered(model, request_ids, counts, x, proba, index): once per forward pass, for the rows
        # handed to waiting requests (the prediction log: one append per batch, not one per request)
        self.on_delivered = on_delivered
        # on_unseen({column: count}): categories a prepared batch had not seen in training
        self.on_unseen = on_unseen
        self._pending: list[tuple[np.ndarray, asyncio.Future, Any, str | None]] = []
        self.pending_rows = 0
        self._scheduled = False
        self._running = False  # thread mode: one forward pass at a time
        self._closed = False
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="aiinfra-infer") if self.threaded else None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def predict(self, x: np.ndarray, model: Any = None, request_id: str | None = None) -> BatchResult:
        """Predict ``x`` with ``model`` (the one the request was validated against; default: current).
        ``request_id`` is passed on to ``on_delivered`` with the request's rows."""
        if self._closed:
            raise ShuttingDown()
        n = len(x)
        if self.pending_rows + n > self.max_queue_rows and self.pending_rows > 0:
            raise QueueFull()
        loop = self._loop or asyncio.get_running_loop()
        self._loop = loop
        fut = loop.create_future()
        self._pending.append((x, fut, model if model is not None else self.get_model(), request_id))
        self.pending_rows += n
        self._schedule()
        return await fut

    def _schedule(self) -> None:
        if self._scheduled or self._running:
            return
        self._scheduled = True
        if self.max_wait_s > 0 and self.pending_rows < self.max_batch_size:
            self._loop.call_later(self.max_wait_s, self._flush)
        elif self._pending and getattr(self._pending[0][2].inputs, "prepare", None) is not None:
            # a per-batch cost (raw rows: the contract check and encoding cost the same for 1 row as
            # for 100): requests whose bytes arrived during the last pass reach the batcher a turn or
            # two later; give them those turns so they share this pass
            self._loop.call_soon(self._loop.call_soon, self._loop.call_soon, self._flush)
        else:
            self._loop.call_soon(self._flush)

    def _take(self) -> tuple[list[tuple[np.ndarray, asyncio.Future, str | None]], Any]:
        # Whole requests only (a request larger than max_batch_size gets a batch of its own), all
        # validated against the same model: across a reload, old and new versions never share a batch.
        taken, rows = [], 0
        model = self._pending[0][2] if self._pending else None
        while self._pending:
            x, fut, m, rid = self._pending[0]
            if taken and (rows + len(x) > self.max_batch_size or m is not model):
                break
            self._pending.pop(0)
            rows += len(x)
            if not fut.cancelled():
                taken.append((x, fut, rid))
        self.pending_rows -= rows
        return taken, model

    def _flush(self) -> None:
        self._scheduled = False
        taken, model = self._take()
        if taken:
            if self.threaded:
                self._running = True
                xs = model.inputs.concat([t[0] for t in taken])
                cf = self._executor.submit(self._compute, model, xs)
                cf.add_done_callback(lambda f: self._loop.call_soon_threadsafe(self._deliver, taken, model, xs, f))
                return
            try:
                xs = model.inputs.concat([t[0] for t in taken])
                result = self._compute(model, xs)
            except Exception as exc:  # a model failure fails this batch, not the server
                _fail(taken, exc)
            else:
                self._split(taken, model, *result)
        if self._pending:
            self._schedule()

    def _compute(self, model: Any, xs: Any) -> tuple[Any, dict[int, BaseException], Any, Any, float]:
        """(prepared batch, {position of a refused request: its exception}, output, index, seconds)."""
        t0 = time.perf_counter()
        refused: dict[int, BaseException] = {}
        prepare = getattr(model.inputs, "prepare", None)
        if prepare is not None:
            xs, refused = prepare(xs)
            if len(xs) == 0:  # every request of the batch was refused
                return xs, refused, None, None, time.perf_counter() - t0
        out, index = predict_batch(model, xs)
        return xs, refused, out, index, time.perf_counter() - t0

    def _deliver(self, taken, model, xs, cf) -> None:
        self._running = False
        try:
            result = cf.result()
        except Exception as exc:
            _fail(taken, exc)
        else:
            self._split(taken, model, *result)
        if self._pending:
            self._schedule()

    def _split(self, taken, model, xs: Any, refused, proba, index, seconds: float) -> None:
        # xs: the prepared batch, holding only the rows of the requests that were not refused
        if self.on_batch is not None and proba is not None:
            self.on_batch(proba.shape[0], seconds)
        unseen = getattr(xs, "unseen", None)
        if unseen and self.on_unseen is not None:
            self.on_unseen(unseen)
        start = 0
        delivered: list[tuple[int, int, str | None]] = []
        for position, (x, fut, rid) in enumerate(taken):
            if position in refused:
                if not fut.done():
                    fut.set_exception(refused[position])
                continue
            end = start + len(x)
            if not fut.done():
                fut.set_result(BatchResult(model, proba[start:end], None if index is None else index[start:end]))
                delivered.append((start, end, rid))
            start = end
        if self.on_delivered is None or not delivered:
            return
        if len(delivered) != len(taken) - len(refused):  # a request went away meanwhile: log only the answered rows
            keep = np.concatenate([np.arange(a, b) for a, b, _ in delivered])
            xs, proba, index = xs[keep], proba[keep], None if index is None else index[keep]
        try:
            self.on_delivered(
                model, [rid for _, _, rid in delivered], [b - a for a, b, _ in delivered], xs, proba, index
            )
        except Exception:  # the log must never fail a request that already has its answer
            log.exception("prediction log: could not record a batch of %d rows", proba.shape[0])

    async def close(self) -> None:
        """Stop accepting; finish what is pending."""
        self._closed = True
        while self._pending or self._running:
            if self._pending and not self._scheduled and not self._running:
                self._schedule()
            await asyncio.sleep(0.001)
        if self._executor is not None:
            self._executor.shutdown(wait=True)


def _fail(taken, exc: BaseException) -> None:
    """Fail every still-waiting request of a batch with the model's exception."""
    for _, fut, _ in taken:
        if not fut.done():
            fut.set_exception(exc)
