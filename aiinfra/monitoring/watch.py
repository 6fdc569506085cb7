"""Watch mode: run the monitor every ``monitor.watch_interval_s`` seconds.

Runs start on a fixed schedule (not "interval after the last run ended"), so hourly windows stay
aligned. A failed run (bad file, empty window) is logged and the loop goes on: a monitor that
stops at the first gap in traffic is no monitor. Between runs the next run's Evidently process is
started, so its import (3-4 s) happens during the wait, not in the run. ``watch_max_runs`` bounds
the loop (tests, cron wrappers); Ctrl-C / SIGTERM end it after the current run.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from aiinfra.errors import AiinfraError
from aiinfra.monitoring.report_worker import ReportWorker

log = logging.getLogger("aiinfra.monitor")


def watch(cfg: Any, run_once: Callable, exit_code: Callable) -> int:
    """Return the exit status of the last run (0/1), or the error's status (2) when it failed."""
    interval = cfg.monitor.watch_interval_s
    max_runs = cfg.monitor.watch_max_runs
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
            except AiinfraError as exc:  # logged, not raised: the next run may find the data
                log.error("watch: run %d failed: %s", runs, exc)
                status = exc.exit_code
            log.info("watch: run %d done (status %d)", runs, status)
            if max_runs and runs >= max_runs:
                break
            if cfg.monitor.report:
                ReportWorker.prewarm()  # the next run finds Evidently imported
            next_start += interval
            while not stop["now"] and time.monotonic() < next_start:
                time.sleep(min(0.5, max(0.0, next_start - time.monotonic())))
            if time.monotonic() > next_start + interval:  # a run overran: skip, don't pile up
                next_start = time.monotonic()
    except KeyboardInterrupt:
        log.info("watch: interrupted after %d run(s)", runs)
    finally:
        ReportWorker.discard_spare()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return status


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
