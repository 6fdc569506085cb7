"""``aiinfra serve``: run the configured serving target (``server=http``, ``server=batch``, or a
plugin's server such as ``server=onnx``)."""

from __future__ import annotations

from typing import Any

from aiinfra.plugins.manager import get_plugins


def run(cfg: Any) -> Any:
    return get_plugins().registry.get("server", cfg.server.type).load()(cfg)
