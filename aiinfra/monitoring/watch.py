"""Watch mode: run the monitor every ``monitor.watch_interval_s`` seconds.

Runs start on a fixed schedule (not "interval after the last run ended"), so hourly windows stay
aligned. A failed run (bad file, empty window) is logged and the loop goes on: a monitor that
stops at the first gap in traffic is no monitor. Between runs the next run's Evidently process is
started, so its import (3-4 s) happens during the wait, not in the run. ``watch_max_runs`` bounds the loop (tests, cron
wrappers); Ctrl-C / SIGTERM end it after the current run.
"""

from __future__ import annotations

import logging
import signal
import time
from typing import Any, Callable

from aiinfra.errors import AiinfraError

log = logging.getLogger("aiinfra.monitor")


def watch(cfg: Any, run_once: Callable, exit_code: Callable, on_error: Callable) -> int:
    """Return the exit status of the last run (0/1), or 2 when the last run failed."""
    interval = float(cfg.monitor.watch_interval_s)
    max_runs = int(cfg.monitor.get("watch_max_runs") or 0)
    stop = {"now": False}

    def _term(signum, frame):  # finish the current run, then leave
        stop["now"] = True

    previous = signal.signal(signal.SIGTERM, _term) if _main_thread() else None
    runs, status = 0, 0
    next_start = time.monotonic()
    try:
        while not stop["now"]:
            runs += 1
            try:
                status = exit_code(run_once(cfg), cfg)
            except AiinfraError as exc:
                status = on_error(exc)
            log.info("watch: run %d done (status %d)", runs, status)
            if max_runs and runs >= max_runs:
                break
            if cfg.monitor.get("report", True):
                from aiinfra.monitoring.report import ReportWorker

                ReportWorker.prewarm()  # the next run finds Evidently imported
            next_start += interval
            while not stop["now"] and time.monotonic() < next_start:
                time.sleep(min(0.5, max(0.0, next_start - time.monotonic())))
            if time.monotonic() > next_start + interval:  # a run overran: skip, don't pile up
                next_start = time.monotonic()
    except KeyboardInterrupt:
        log.info("watch: interrupted after %d run(s)", runs)
    finally:
        from aiinfra.monitoring.report import ReportWorker

        ReportWorker.discard_spare()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return status


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
