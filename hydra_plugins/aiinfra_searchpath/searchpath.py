"""Hydra SearchPathPlugin: adds the config directories that aiinfra plugins contribute.

Hydra discovers this module in every Hydra application, including DVC's composition during
``dvc exp run``, so ``conf/`` composes identically whether aiinfra or DVC composes it.
"""

from __future__ import annotations

import warnings

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class AiinfraSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        from aiinfra.errors import PluginError
        from aiinfra.plugins.manager import get_plugins

        try:
            entries = get_plugins().searchpath()
        except PluginError as exc:  # report, and compose what the project itself has
            warnings.warn(str(exc), stacklevel=2)
            return
        for entry in entries:
            search_path.append(provider="aiinfra-plugin", path=entry)
