"""Build the plugin manager: find plugins through the ``aiinfra`` entry-point group and load them.

Nothing happens at import time; :func:`build_plugin_manager` is the factory and
:func:`get_plugins` caches one instance per process.

Environment variables:

``AIINFRA_LOAD_PLUGINS``
    unset: load every installed plugin; empty: load none but aiinfra's own built-in components;
    ``dist-a,dist-b``: load only those distributions (or entry-point names).
``AIINFRA_STRICT_PLUGINS=1``
    a plugin that fails to import, or needs another API version, is an error instead of a
    warning.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from aiinfra import API_VERSION
from aiinfra.errors import PluginError, did_you_mean
from aiinfra.plugins import spec
from aiinfra.plugins.registry import ComponentRegistry

GROUP = "aiinfra"
CORE_DIST = "aiinfra"
LOAD_ENV = "AIINFRA_LOAD_PLUGINS"
STRICT_ENV = "AIINFRA_STRICT_PLUGINS"


class PluginSkippedWarning(UserWarning):
    """A plugin was not loaded; the message says why and how to fix it."""


@dataclass
class PluginInfo:
    """What ``aiinfra plugins`` shows for one entry point."""

    name: str
    dist: str
    version: str
    value: str
    status: str = "loaded"  # loaded | skipped | disabled
    reason: str = ""
    hooks: list[str] = field(default_factory=list)
    api: str = ""

    @property
    def provider(self) -> str:
        return f"{self.dist} {self.version}"


@dataclass
class Plugins:
    """The loaded plugin manager and what came out of it."""

    pm: pluggy.PluginManager
    infos: list[PluginInfo]
    _registry: ComponentRegistry | None = None
    _commands: dict[str, tuple[str, str, str]] | None = None

    @property
    def hook(self) -> Any:
        return self.pm.hook

    @property
    def registry(self) -> ComponentRegistry:
        """Components from every loaded plugin; registration errors surface here."""
        if self._registry is None:
            registry = ComponentRegistry()
            for impl in self.pm.hook.aiinfra_register_components.get_hookimpls():
                provider = self._provider(impl.plugin_name)
                impl.function(register=registry.register_callback(provider))
            self._registry = registry
        return self._registry

    def searchpath(self) -> list[str]:
        """Hydra search-path entries contributed by plugins, in load order."""
        out: list[str] = []
        for result in self.pm.hook.aiinfra_config_searchpath():
            for entry in [result] if isinstance(result, str) else (result or []):
                if entry not in out:
                    out.append(entry)
        return out

    def commands(self) -> dict[str, tuple[str, str, str]]:
        """name -> (target, help, provider) of plugin-contributed CLI commands."""
        if self._commands is None:
            commands: dict[str, tuple[str, str, str]] = {}
            for impl in self.pm.hook.aiinfra_register_commands.get_hookimpls():
                provider = self._provider(impl.plugin_name)

                def register(name: str, *, target: str, help: str = "", _p: str = provider):
                    if name in commands:
                        raise PluginError(
                            f"command '{name}' is registered twice: by {commands[name][2]} and by {_p}."
                        )
                    commands[name] = (target, help, _p)

                impl.function(register=register)
            self._commands = commands
        return self._commands

    def _provider(self, plugin_name: str) -> str:
        for info in self.infos:
            if info.name == plugin_name:
                return info.provider
        return plugin_name


def _selection() -> set[str] | None:
    raw = os.environ.get(LOAD_ENV)
    if raw is None:
        return None
    return {item.strip() for item in raw.split(",") if item.strip()}


def _strict() -> bool:
    return os.environ.get(STRICT_ENV, "").lower() in {"1", "true", "yes", "on"}


def _api_compatible(required: str) -> bool:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        return SpecifierSet(required).contains(API_VERSION, prereleases=True)
    except InvalidSpecifier:
        return False


def _skip(info: PluginInfo, reason: str, strict: bool) -> None:
    info.status, info.reason = "skipped", reason
    message = (
        f"aiinfra: skipped plugin '{info.name}' from {info.provider} ({GROUP}: {info.value}): "
        f"{reason}"
    )
    if strict:
        raise PluginError(message, hint=f"fix or uninstall {info.dist}, or unset {STRICT_ENV}")
    warnings.warn(
        message + f". Set {STRICT_ENV}=1 to make this an error.", PluginSkippedWarning, stacklevel=3
    )


def _known_hooks() -> list[str]:
    return [n for n in dir(spec) if n.startswith("aiinfra_")]


def _check_hooks(pm: pluggy.PluginManager, plugin: Any, info: PluginInfo) -> None:
    """Like pluggy's check_pending, but names the plugin's distribution and the closest hook."""
    known = _known_hooks()
    for attr in dir(plugin):
        if attr.startswith("aiinfra_") and attr not in known and callable(getattr(plugin, attr)):
            raise PluginError(
                f"plugin '{info.name}' from {info.provider} implements unknown hook '{attr}'."
                + did_you_mean(attr, known),
                hint=f"valid hooks: {', '.join(known)} (docs/hooks.md)",
            )


def build_plugin_manager(
    *, load_entrypoints: bool = True, plugins: list[Any] | None = None
) -> Plugins:
    """Create a plugin manager with the hook spec, then load plugins.

    :param load_entrypoints: find plugins through the ``aiinfra`` entry-point group. Tests and
        plugin authors pass False and register exactly what they need.
    :param plugins: extra plugin objects (modules or instances) to register.
    """
    pm = pluggy.PluginManager(spec.PROJECT)
    pm.add_hookspecs(spec)
    infos: list[PluginInfo] = []
    strict = _strict()
    selection = _selection()

    if load_entrypoints:
        seen: dict[str, PluginInfo] = {}
        for ep in sorted(entry_points(group=GROUP), key=lambda e: (e.dist.name if e.dist else "", e.name)):
            info = _info(ep)
            if ep.name in seen and seen[ep.name].dist != info.dist:
                # pluggy would silently skip the second one; name both instead.
                raise PluginError(
                    f"two plugins use the entry-point name '{ep.name}': {seen[ep.name].provider} "
                    f"and {info.provider}.",
                    hint=f"uninstall one, or choose with {LOAD_ENV}",
                )
            seen[ep.name] = info
            infos.append(info)
            if info.dist != CORE_DIST and selection is not None and not (
                {info.dist, info.name} & selection
            ):
                info.status, info.reason = "disabled", f"not in {LOAD_ENV}"
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin must not take the host down
                _skip(info, f"{type(exc).__name__}: {exc}", strict)
                continue
            required = getattr(plugin, "AIINFRA_API", None)
            if required is not None:
                info.api = str(required)
                if not _api_compatible(str(required)):
                    _skip(
                        info,
                        f"it needs aiinfra plugin API {required}, this is API {API_VERSION}; "
                        f"upgrade {info.dist} or aiinfra",
                        strict,
                    )
                    continue
            _register(pm, plugin, info)
        if selection:
            missing = selection - {i.dist for i in infos} - {i.name for i in infos}
            for name in sorted(missing):
                warnings.warn(
                    f"aiinfra: plugin '{name}' named in {LOAD_ENV} is not installed",
                    PluginSkippedWarning,
                    stacklevel=2,
                )

    for obj in plugins or []:
        name = getattr(obj, "__name__", None) or type(obj).__name__
        info = PluginInfo(name=name, dist=name, version="(registered)", value=repr(obj))
        infos.append(info)
        _register(pm, obj, info)

    pm.check_pending()
    return Plugins(pm=pm, infos=infos)


def _info(ep: EntryPoint) -> PluginInfo:
    dist = ep.dist
    return PluginInfo(
        name=ep.name,
        dist=dist.name if dist else "?",
        version=dist.version if dist else "?",
        value=ep.value,
    )


def _register(pm: pluggy.PluginManager, plugin: Any, info: PluginInfo) -> None:
    _check_hooks(pm, plugin, info)
    try:
        pm.register(plugin, name=info.name)
    except (pluggy.PluginValidationError, ValueError) as exc:
        raise PluginError(f"plugin '{info.name}' from {info.provider} is invalid: {exc}") from exc
    info.hooks = sorted(
        hc.name for hc in pm.get_hookcallers(plugin) or [] if hc.name.startswith("aiinfra_")
    )


_cached: Plugins | None = None


def get_plugins() -> Plugins:
    """The process-wide plugin manager, built on first use."""
    global _cached
    if _cached is None:
        _cached = build_plugin_manager()
    return _cached


def reset_plugins(plugins: Plugins | None = None) -> None:
    """Replace (or drop) the process-wide plugin manager; for tests and long-running servers."""
    global _cached
    _cached = plugins

