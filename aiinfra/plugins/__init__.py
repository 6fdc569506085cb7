"""Plugin system: hook spec, component registry and the plugin-manager factory."""

from aiinfra.plugins.spec import hookimpl, hookspec

__all__ = ["hookimpl", "hookspec"]
