"""The database URL of a ``sql`` source: written in the config, or kept in the environment."""

from __future__ import annotations

import os
from typing import Any

from aiinfra.errors import ConfigError


def resolve_url(cfg: Any) -> str:
    """``source.url``, else the environment variable named by ``source.url_env``."""
    url, env = cfg.url, cfg.url_env
    if not url and env:
        url = os.environ.get(env)
    if not url:
        raise ConfigError(
            "the sql source has no database URL.",
            hint=f"set source.url=sqlite:///path/to.db (or any SQLAlchemy URL), or the environment "
            f"variable {env or 'named by source.url_env'}",
        )
    return url
