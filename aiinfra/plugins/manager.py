"""Build the plugin manager: find plugins through the ``aiinfra`` entry-point group and load them.

Nothing happens at import time; :func:`build_plugin_manager` is the factory and
:func:`get_plugins` caches one instance per process.

Environment variables:

``AIINFRA_LOAD_PLUGINS``
    unset: load every installed plugin; empty: load none but aiinfra's own built-in components;
    ``dist-a,dist-b``: load only those distributions (or entry-point names).
``AIINFRA_STRICT_PLUGINS=1``
    a plugin that fails to import, needs another API version or implements an unknown
    (misspelled) hook is an error instead of a warning.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from aiinfra import API_VERSION
from aiinfra.errors import PluginError, did_you_mean
from aiinfra.plugins import spec
from aiinfra.plugins.hooks import call_registration
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
            call_registration(
                self,
                "aiinfra_register_components",
                per_impl=lambda impl, provider: {"register": registry.register_callback(provider)},
            )
            self._registry = registry
        return self._registry

    def searchpath(self) -> list[str]:
        """Hydra search-path entries contributed by plugins, in load order."""
        out: list[str] = []
        for impl, result in call_registration(self, "aiinfra_config_searchpath"):
            for entry in [result] if isinstance(result, str) else (result or []):
                if not isinstance(entry, str) or "://" not in entry:
                    raise PluginError(
                        f"{self.provider_of(impl.plugin_name)} returned the config search-path entry "
                        f"{entry!r} from aiinfra_config_searchpath.",
                        hint="return strings like 'pkg://mypackage.conf' or 'file:///abs/dir'",
                    )
                if entry not in out:
                    out.append(entry)
        return out

    def commands(self) -> dict[str, tuple[str, str, str]]:
        """name -> (target, help, provider) of plugin-contributed CLI commands."""
        if self._commands is None:
            commands: dict[str, tuple[str, str, str]] = {}

            def bind(impl: Any, provider: str) -> dict[str, Any]:
                def register(name: str, *, target: str, help: str = "") -> None:
                    if name in commands:
                        raise PluginError(
                            f"command '{name}' is registered twice: by {commands[name][2]} and by {provider}."
                        )
                    commands[name] = (target, help, provider)

                return {"register": register}

            call_registration(self, "aiinfra_register_commands", per_impl=bind)
            self._commands = commands
        return self._commands

    def register(self, plugin: Any, name: str | None = None) -> PluginInfo:
        """Register a plugin object after the manager was built (tests, embedding applications)."""
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        info = PluginInfo(name=name, dist=name, version="(registered)", value=repr(plugin))
        _register(self.pm, plugin, info)
        try:
            _check_pending(self.pm, [*self.infos, info])
        except PluginError:
            self.pm.unregister(plugin)  # leave the manager as it was
            raise
        self.infos.append(info)
        self._registry = self._commands = None  # rebuilt with the new plugin on next use
        return info

    def unregister(self, plugin: Any) -> None:
        name = self.pm.get_name(plugin)
        self.pm.unregister(plugin)
        self.infos = [i for i in self.infos if i.name != name]
        self._registry = self._commands = None

    def provider_of(self, plugin_name: str) -> str:
        """ "distribution version" of a registered plugin (its name when it came from no distribution)."""
        for info in self.infos:
            if info.name == plugin_name:
                return info.provider
        return plugin_name


def _norm(name: str) -> str:
    """Distribution names compare normalised (PEP 503): aiinfra_sql == aiinfra-sql == AIINFRA.SQL."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _selection() -> set[str] | None:
    raw = os.environ.get(LOAD_ENV)
    if raw is None:
        return None
    return {_norm(item.strip()) for item in raw.split(",") if item.strip()}


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
    message = f"aiinfra: skipped plugin '{info.name}' from {info.provider} ({GROUP}: {info.value}): {reason}"
    if strict:
        raise PluginError(message, hint=f"fix or uninstall {info.dist}, or unset {STRICT_ENV}")
    _warn(message + ("" if message.endswith((".", "?")) else ".") + f" Set {STRICT_ENV}=1 to make this an error.")


def _warn(message: str) -> None:
    # warn_explicit with a pseudo file name: the user sees "aiinfra-plugins: PluginSkippedWarning:
    # <message>" rather than a line of aiinfra's source, and every occurrence is shown.
    warnings.warn_explicit(message, PluginSkippedWarning, filename="aiinfra-plugins", lineno=0)


def _known_hooks() -> list[str]:
    return [n for n in dir(spec) if n.startswith("aiinfra_")]


def _unknown_hook(plugin: Any) -> str | None:
    """The first ``aiinfra_*`` callable of ``plugin`` that the hook spec does not declare, or None."""
    known = _known_hooks()
    for attr in dir(plugin):
        if attr.startswith("aiinfra_") and attr not in known and callable(getattr(plugin, attr, None)):
            return attr
    return None


def _unknown_hook_text(hook: str) -> str:
    known = _known_hooks()
    return f"it implements unknown hook '{hook}'." + (did_you_mean(hook, known) or f" Valid hooks: {', '.join(known)}")


def _check_hooks(pm: pluggy.PluginManager, plugin: Any, info: PluginInfo) -> None:
    """Like pluggy's check_pending, but names the plugin's distribution and the closest hook."""
    hook = _unknown_hook(plugin)
    if hook is not None:
        raise PluginError(
            f"plugin '{info.name}' from {info.provider} implements unknown hook '{hook}'."
            + did_you_mean(hook, _known_hooks()),
            hint=f"valid hooks: {', '.join(_known_hooks())} (docs/hooks.md)",
        )


def build_plugin_manager(*, load_entrypoints: bool = True, plugins: list[Any] | None = None) -> Plugins:
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
            infos.append(info)
            if (
                info.dist != CORE_DIST
                and selection is not None
                and not ({_norm(info.dist), _norm(info.name)} & selection)
            ):
                info.status, info.reason = "disabled", f"not in {LOAD_ENV}"
                continue
            if ep.name in seen:
                # pluggy would silently skip the second one; name both instead. Only enabled
                # plugins conflict, so AIINFRA_LOAD_PLUGINS resolves it.
                raise PluginError(
                    f"two plugins use the entry-point name '{ep.name}': {seen[ep.name].provider} and {info.provider}.",
                    hint=f"uninstall one, or choose with {LOAD_ENV}=dist1,dist2",
                )
            seen[ep.name] = info
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
            # a misspelled hook is the plugin's defect, like a failed import: the host (and
            # `aiinfra plugins`, which shows why) keeps working without it
            hook = _unknown_hook(plugin)
            if hook is not None:
                _skip(info, _unknown_hook_text(hook), strict)
                continue
            _register(pm, plugin, info)
            pending = _unspecified_hooks(pm, plugin)
            if pending:
                pm.unregister(plugin)
                info.hooks = []
                _skip(info, _unknown_hook_text(pending[0]), strict)
                continue
        if selection:
            installed = {_norm(i.dist) for i in infos} | {_norm(i.name) for i in infos}
            for name in sorted(selection - installed):
                message = f"aiinfra: plugin '{name}' named in {LOAD_ENV} is not installed"
                if strict:
                    raise PluginError(message, hint="pip install it, or remove it from " + LOAD_ENV)
                _warn(message)

    _check_pending(pm, infos)
    result = Plugins(pm=pm, infos=infos)
    for obj in plugins or []:
        result.register(obj)
    return result


def _unspecified_hooks(pm: pluggy.PluginManager, plugin: Any) -> list[str]:
    """Hooks ``plugin`` implements (``@hookimpl``) that no spec declares (pluggy's check_pending, for one plugin)."""
    return sorted(hc.name for hc in pm.get_hookcallers(plugin) or [] if not hc.has_spec())


def _check_pending(pm: pluggy.PluginManager, infos: list[PluginInfo]) -> None:
    """pluggy's check for ``@hookimpl`` functions whose name is no hook, as a clear PluginError."""
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = getattr(exc, "plugin", None)
        plugin_name = pm.get_name(name) if name is not None else None
        provider = next((i.provider for i in infos if i.name == plugin_name), plugin_name or "?")
        match = re.search(r"unknown hook '([^']+)'", str(exc))
        hook = match.group(1) if match else "?"
        known = _known_hooks()
        raise PluginError(
            f"plugin '{plugin_name}' from {provider} implements unknown hook '{hook}'." + did_you_mean(hook, known),
            hint=f"valid hooks: {', '.join(known)} (docs/hooks.md)",
        ) from None


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
    info.hooks = sorted(hc.name for hc in pm.get_hookcallers(plugin) or [] if hc.name.startswith("aiinfra_"))


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
