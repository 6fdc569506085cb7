"""Send a verdict to the configured sinks and to plugins' ``aiinfra_on_drift`` hook.

Each sink and each hook implementation runs on its own: one failing is logged and recorded in
the returned outcomes, and the others still run (the report is already on disk).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("aiinfra.monitor")


def _sink(name: str):
    from aiinfra.plugins.manager import get_plugins

    return get_plugins().registry.get("sink", name).load()


def dispatch(verdict: dict, cfg: Any) -> list[dict]:
    """Run sinks (on drift, or always for ``always: true`` sinks) and, on drift, the hook."""
    from omegaconf import DictConfig, OmegaConf

    outcomes: list[dict] = []
    drift = bool(verdict.get("drift_detected"))
    for i, alert in enumerate(cfg.monitor.get("alerts") or []):
        options = OmegaConf.to_container(alert, resolve=True) if isinstance(alert, DictConfig) else dict(alert)
        kind = str(options.get("type", "log"))
        if not (drift or options.get("always")):
            continue
        try:
            _sink(kind)(verdict, options, cfg)
            outcomes.append({"sink": kind, "index": i, "ok": True})
        except Exception as exc:  # noqa: BLE001 - a sink must never take the monitor down
            log.error("alert sink %s (monitor.alerts[%d]) failed: %s: %s", kind, i, type(exc).__name__, exc)
            outcomes.append({"sink": kind, "index": i, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
    if drift:
        from aiinfra.plugins.manager import get_plugins

        hook = get_plugins().hook.aiinfra_on_drift
        for impl in reversed(hook.get_hookimpls()):  # one by one, so one failure spares the others
            try:
                impl.function(**{a: v for a, v in {"report": verdict, "config": cfg}.items() if a in impl.argnames})
                outcomes.append({"hook": impl.plugin_name, "ok": True})
            except Exception as exc:  # noqa: BLE001
                log.error("plugin %s: aiinfra_on_drift failed: %s: %s", impl.plugin_name, type(exc).__name__, exc)
                outcomes.append({"hook": impl.plugin_name, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
    return outcomes
