"""The one rule for calling hooks.

Every hook is called one implementation at a time, **in plugin load order** (aiinfra's built-in
plugin first, then installed distributions sorted by name, then plugins registered at run time),
with only the arguments each implementation declares. What happens when an implementation
raises depends on the kind of hook:

* **Registration hooks** (``aiinfra_register_components``, ``aiinfra_register_commands``,
  ``aiinfra_config_searchpath``) build what the command needs. A failure stops the command with one
  :class:`~aiinfra.errors.PluginError` naming the plugin, its distribution and the hook: a
  half-registered set of components would fail later, less clearly.
* **Notification hooks** (``aiinfra_stage_finished``, ``aiinfra_on_drift``) report something
  that already happened. Each implementation is isolated: a failure is logged as one warning line
  naming the plugin and its distribution, recorded in the returned :class:`HookOutcome` list, and
  the remaining implementations still run. Nothing a notification does can undo the stage.

aiinfra calls hook implementations only through this module (a test scans the source for others).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import pluggy

from aiinfra.errors import AiinfraError, PluginError

log = logging.getLogger("aiinfra.plugins")

REGISTRATION_HOOKS = ("aiinfra_register_components", "aiinfra_register_commands", "aiinfra_config_searchpath")
NOTIFICATION_HOOKS = ("aiinfra_stage_finished", "aiinfra_on_drift")


class Plugins(Protocol):
    """What the callers need of :class:`aiinfra.plugins.manager.Plugins` (which imports this module)."""

    pm: pluggy.PluginManager

    def provider_of(self, plugin_name: str) -> str: ...


@dataclass(frozen=True)
class HookOutcome:
    """What one implementation of a notification hook did."""

    hook: str
    plugin: str  # the plugin's registered name (its entry-point name)
    provider: str  # "distribution version"
    ok: bool
    error: str | None = None  # "ExceptionType: message" when it failed

    def as_dict(self) -> dict[str, Any]:
        return {
            "hook": self.plugin,
            "provider": self.provider,
            "ok": self.ok,
            **({"error": self.error} if self.error else {}),
        }


def implementations(plugins: Plugins, hook: str) -> list[Any]:
    """The hook's implementations in plugin load order (pluggy keeps them in registration order)."""
    return list(getattr(plugins.pm.hook, hook).get_hookimpls())


def _call(impl: Any, kwargs: dict[str, Any]) -> Any:
    # pluggy lets an implementation take fewer arguments than the spec offers; honour that
    return impl.function(**{name: kwargs[name] for name in impl.argnames if name in kwargs})


def call_registration(plugins: Plugins, hook: str, per_impl: Any = None, **kwargs: Any) -> list[tuple[Any, Any]]:
    """Call a registration hook; return ``(impl, result)`` pairs in load order.

    ``per_impl(impl, provider) -> dict`` may supply arguments bound to one implementation (the
    ``register`` callback that attributes each component to its distribution).
    """
    out = []
    for impl in implementations(plugins, hook):
        provider = plugins.provider_of(impl.plugin_name)
        args = {**kwargs, **(per_impl(impl, provider) if per_impl else {})}
        try:
            out.append((impl, _call(impl, args)))
        except AiinfraError:
            raise
        except Exception as exc:
            raise PluginError(
                f"plugin '{impl.plugin_name}' from {provider} failed in {hook}: {type(exc).__name__}: {exc}",
                hint="fix or uninstall it, or leave it out with AIINFRA_LOAD_PLUGINS",
            ) from exc
    return out


def call_notification(plugins: Plugins, hook: str, **kwargs: Any) -> list[HookOutcome]:
    """Call a notification hook; every implementation runs, failures are logged and returned."""
    outcomes: list[HookOutcome] = []
    for impl in implementations(plugins, hook):
        provider = plugins.provider_of(impl.plugin_name)
        try:
            _call(impl, kwargs)
        except Exception as exc:  # noqa: BLE001 - one plugin's failure must not affect the others
            error = f"{type(exc).__name__}: {exc}"
            log.warning("plugin '%s' from %s failed in %s: %s", impl.plugin_name, provider, hook, error)
            outcomes.append(HookOutcome(hook, impl.plugin_name, provider, False, error))
        else:
            outcomes.append(HookOutcome(hook, impl.plugin_name, provider, True))
    return outcomes
