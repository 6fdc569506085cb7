"""``aiinfra monitor``: run the configured monitor (``monitor=drift``); its result is the exit status."""

from __future__ import annotations

from typing import Any


def run(cfg: Any) -> Any:
    from aiinfra.plugins.manager import get_plugins

    return get_plugins().registry.get("monitor", cfg.monitor.type).load()(cfg)
