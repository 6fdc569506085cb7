"""``aiinfra monitor``: run the configured monitor (``monitor=drift``); its result is the exit status.

The runner imports this module before it composes the config (to call :func:`prestart`), so it
imports only light modules: the report worker is standard library until it renders.
"""

from __future__ import annotations

from aiinfra.config.schema import RootConfig
from aiinfra.monitoring.report_worker import ReportWorker
from aiinfra.monitoring.schema import DriftMonitorConfig
from aiinfra.plugins.manager import get_plugins


def wants_report(cfg: RootConfig) -> bool:
    """Whether this run renders Evidently's report (the built-in drift monitor with ``report: true``)."""
    return isinstance(cfg.monitor, DriftMonitorConfig) and cfg.monitor.report


class EarlyReportProcess:
    """Evidently's report process, started before the config is composed (the runner's prestart
    protocol): its 3-4 s import then overlaps composing the config and computing the verdict."""

    def __init__(self) -> None:
        ReportWorker.prewarm()

    def configured(self, cfg: RootConfig) -> None:
        """Stop the process at once when this run will not render a report."""
        if not wants_report(cfg):
            ReportWorker.discard_spare()

    def close(self) -> None:
        """Whatever happened, leave nothing running (a run that used it has taken it already)."""
        ReportWorker.discard_spare()


def prestart() -> EarlyReportProcess:
    return EarlyReportProcess()


def run(cfg: RootConfig) -> int:
    return get_plugins().registry.get("monitor", cfg.monitor.type).load()(cfg)
