"""Send a verdict to the configured sinks and to plugins' ``aiinfra_on_drift`` hook.

Each sink runs on its own: one failing is logged and recorded in the returned outcomes, and the
others still run (the report is already on disk). The hook is called by the one hook-calling rule
(:func:`aiinfra.plugins.hooks.call_notification`: every implementation, isolated, in load order).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aiinfra.config.schema import RootConfig
from aiinfra.config.typed import to_dictconfig
from aiinfra.monitoring.schema import SinkConfig
from aiinfra.monitoring.verdict import AlertOutcome, DriftReport
from aiinfra.plugins.hooks import call_notification
from aiinfra.plugins.manager import get_plugins

log = logging.getLogger("aiinfra.monitor")


def _sink_options(options: Any) -> tuple[str, bool, Any]:
    """(type, always, options as the sink gets them) of one ``monitor.alerts`` entry."""
    if isinstance(options, Mapping):  # a sink registered without a schema: its entry as written
        return str(options["type"]), bool(options.get("always", SinkConfig.always)), to_dictconfig(dict(options))
    return str(options.type), bool(options.always), options


def dispatch(verdict: DriftReport, cfg: RootConfig) -> list[AlertOutcome]:
    """Run the sinks (on drift or a breached threshold, or always for ``always: true`` sinks) and,
    on either, the hook.

    A sink is called as ``sink(verdict, options, config)``: ``options`` its entry of
    ``monitor.alerts``, validated by the sink's own schema; ``config`` the run's config, read-only.
    """
    plugins = get_plugins()
    config = to_dictconfig(cfg)
    outcomes: list[AlertOutcome] = []
    drift = verdict.get("alert", verdict["drift_detected"])  # drift, or a breached threshold
    for i, entry in enumerate(cfg.monitor.alerts):
        kind, always, options = _sink_options(entry)
        if not (drift or always):
            continue
        try:
            plugins.registry.get("sink", kind).load()(verdict, options, config)
            outcomes.append({"sink": kind, "index": i, "ok": True})
        except Exception as exc:  # noqa: BLE001 - a sink must never take the monitor down
            log.error("alert sink %s (monitor.alerts[%d]) failed: %s: %s", kind, i, type(exc).__name__, exc)
            outcomes.append({"sink": kind, "index": i, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
    if drift:
        for outcome in call_notification(plugins, "aiinfra_on_drift", report=verdict, config=config):
            outcomes.append(outcome.as_dict())
    return outcomes
