"""Clients that stall, floods of connections, and the order of a shutdown.

* :class:`BodyGuard`: a deadline on reading a request body (``server.body_timeout_s``): a client
  that sent the headers and part of a body is answered 408 and its connection closed. At shutdown
  the bodies still being read are answered 503 at once, so a drain never waits the whole
  ``graceful_timeout_s`` for a client that will not finish.
* :class:`HeaderSweeper`: the same deadline for the headers (slowloris): uvicorn keeps a connection
  that never completes its headers forever, so a sweep closes those with a 408.
  ``server.max_connections`` (uvicorn's ``limit_concurrency``) caps the open connections: 503 beyond.
* :class:`Shutdown`: SIGTERM flips readiness (``/v2/health/ready`` answers 503) at once, keeps
  serving ``server.shutdown_delay_s`` so a load balancer stops sending, aborts stalled body reads,
  then hands over to uvicorn's drain (stop accepting, finish in-flight requests, the app's shutdown).

These hook into the uvicorn server that runs the app through the signal handler it installs
(``Server.handle_exit``), so one code path serves one process and each of ``server.workers``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from typing import Any

import orjson

log = logging.getLogger("aiinfra.serving")

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class BodyTimeout(Exception):
    """The body did not arrive within the deadline."""


class BodyAborted(Exception):
    """The server is shutting down while the body was still arriving."""


class BodyGuard:
    """Deadline and shutdown abort for body reads; one per process.

    No timer per request (a ``call_later`` costs more than the rest of a small request's body
    read): a reader is a dict entry with its start time, and :meth:`expire`, run every
    ``interval_s`` by the app, cancels the readers past the deadline (so a deadline is
    ``timeout_s`` to ``timeout_s + interval_s``)."""

    def __init__(self, timeout_s: float):
        self.timeout_s = float(timeout_s)
        self.closing = False
        self._readers: dict[asyncio.Task, list] = {}  # task -> [start, reason or None]

    @property
    def interval_s(self) -> float:
        return max(0.05, min(1.0, self.timeout_s / 4))

    async def read(self, read: Callable[[], Any]) -> Any:
        """``await read()`` within the deadline; :class:`BodyTimeout` or :class:`BodyAborted` otherwise."""
        if self.closing:
            raise BodyAborted()
        task = asyncio.current_task()
        entry = self._readers[task] = [time.monotonic(), None]
        try:
            return await read()
        except asyncio.CancelledError:
            if entry[1] is None:
                raise  # cancelled by someone else (uvicorn's forced shutdown): not ours to swallow
            task.uncancel()
            raise (BodyTimeout() if entry[1] == "timeout" else BodyAborted()) from None
        finally:
            self._readers.pop(task, None)

    def _stop(self, task: asyncio.Task, entry: list, reason: str) -> None:
        if entry[1] is None:
            entry[1] = reason
            task.cancel()

    def expire(self) -> int:
        """Cancel the readers past the deadline (they answer 408); returns how many."""
        limit = time.monotonic() - self.timeout_s
        late = [(t, e) for t, e in self._readers.items() if e[0] <= limit and e[1] is None]
        for task, entry in late:
            self._stop(task, entry, "timeout")
        return len(late)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.expire()

    def abort_all(self) -> int:
        """Shutdown: every body still being read ends now (503); returns how many."""
        self.closing = True
        readers = list(self._readers.items())
        for task, entry in readers:
            self._stop(task, entry, "shutdown")
        return len(readers)


def _raw_response(status: int, reason: str, message: str) -> bytes:
    body = orjson.dumps({"error": message})
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class HeaderSweeper:
    """Closes connections whose request headers take longer than the deadline (slowloris)."""

    def __init__(self, server_state: Any, timeout_s: float, on_close: Callable[[], None] | None = None):
        self.server_state = server_state
        self.timeout_s = float(timeout_s)
        self.on_close = on_close
        self._since: dict[Any, tuple[Any, float]] = {}
        self._message = _raw_response(
            408,
            "Request Timeout",
            f"request headers not received within {self.timeout_s:g} s (server.body_timeout_s)",
        )

    @property
    def interval_s(self) -> float:
        return max(0.05, min(1.0, self.timeout_s / 4))

    def sweep(self) -> int:
        """One pass over the open connections; returns how many were closed."""
        now = time.monotonic()
        since: dict[Any, tuple[Any, float]] = {}
        closed = 0
        for conn in list(self.server_state.connections):
            cycle = getattr(conn, "cycle", None)
            # between requests: no request running, and not idling under uvicorn's keep-alive timer
            # (which closes idle connections itself). A new request's partial headers look like this.
            if cycle is not None and not cycle.response_complete:
                continue
            if getattr(conn, "timeout_keep_alive_task", None) is not None:
                continue
            transport = getattr(conn, "transport", None)
            if transport is None or transport.is_closing():
                continue
            first = self._since.get(conn)
            if first is None or first[0] is not cycle:
                first = (cycle, now)
            if now - first[1] >= self.timeout_s:
                transport.write(self._message)
                transport.close()
                closed += 1
                if self.on_close is not None:
                    self.on_close()
                continue
            since[conn] = first
        self._since = since
        return closed

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                self.sweep()
            except Exception:  # never let the sweeper die
                log.exception("connection sweep failed")


def uvicorn_server() -> Any:
    """The uvicorn ``Server`` running this process's app, found through the SIGTERM handler it
    installed before the app's startup; None under another server (or a test client)."""
    handler = signal.getsignal(signal.SIGTERM)
    server = getattr(handler, "__self__", None)
    if server is not None and hasattr(server, "server_state") and hasattr(server, "should_exit"):
        return server
    return None


class Shutdown:
    """SIGTERM/SIGINT: readiness off at once, ``delay_s`` of service, stalled reads aborted, then
    uvicorn's own handler (its drain). A second signal skips what is left of the delay."""

    def __init__(self, state: Any, guard: BodyGuard, delay_s: float):
        self.state = state
        self.guard = guard
        self.delay_s = float(delay_s)
        self.signalled = False
        self._drained: set[int] = set()
        self._original: dict[int, Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self, server: Any) -> bool:
        """Wrap the signal handlers ``server`` installed; False if there is none to wrap."""
        if server is None:
            return False
        self._loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            self._original[sig] = signal.getsignal(sig)
            signal.signal(sig, self._on_signal)
        return True

    def _on_signal(self, sig: int, frame: Any) -> None:
        # a plain attribute store: safe in a signal handler; readiness answers 503 from the next request on
        self.state.ready = False
        first = not self.signalled
        self.signalled = True
        self._loop.call_soon_threadsafe(self._begin, sig, frame, self.delay_s if first else 0.0)

    def _begin(self, sig: int, frame: Any, delay_s: float) -> None:
        if delay_s > 0:
            log.info("%s: not ready; serving %.3g s more before the drain", signal.Signals(sig).name, delay_s)
            self._loop.call_later(delay_s, self._drain, sig, frame)
        else:
            self._drain(sig, frame)

    def _drain(self, sig: int, frame: Any) -> None:
        if sig in self._drained:
            return
        self._drained.add(sig)
        aborted = self.guard.abort_all()
        if aborted:
            log.info("shutdown: %d stalled request bodies answered 503", aborted)
        original = self._original.get(sig)
        if callable(original):
            original(sig, frame)
