"""``aiinfra serve``: run the configured serving target (``server=http`` or ``server=batch``)."""

from __future__ import annotations

from typing import Any


def run(cfg: Any) -> Any:
    from aiinfra.plugins.manager import get_plugins

    return get_plugins().registry.get("server", cfg.server.type).load()(cfg)
