"""The component registry: (kind, name) -> import strings of the implementation and its schema.

Nothing is imported when a component is registered; :meth:`ComponentSpec.load` imports the target
when a stage builds it, and :meth:`ComponentSpec.load_schema` imports its (light) config dataclass
for validation.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiinfra.errors import PluginError, UnknownComponentError, choices_text, did_you_mean

#: Component kinds. ``sink`` is an alert sink for drift reports (an entry of ``monitor.alerts``);
#: ``runtime`` loads a model directory for the server: ``load(resolved, server_cfg) -> ServedModel``
#: (:class:`aiinfra.serving.runtime.ServedModel`), picked by ``server.runtime``; ``deploy`` renders
#: deployment files (``aiinfra deploy <name>``, the ``deploy`` config group); ``kms`` wraps and
#: unwraps the data keys of the encrypted prediction and feedback logs (``server.log_privacy.kms``):
#: a class ``KmsClient(server_cfg)`` (``server_cfg``: the typed ``cfg.server``) with
#: ``wrap_key(key: bytes, master_key_id: str) -> str`` and
#: ``unwrap_key(wrapped: str, master_key_id: str) -> bytes`` (:mod:`aiinfra.serving.log_crypto`).
KINDS = ("source", "model", "trainer", "server", "monitor", "sink", "runtime", "deploy", "kms")

Register = Callable[..., None]


def import_string(path: str) -> Any:
    """Import ``"package.module:attribute"`` (or ``package.module.attribute``)."""
    module_name, _, attr = path.partition(":")
    if not attr:
        module_name, _, attr = path.rpartition(".")
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class ComponentSpec:
    kind: str
    name: str
    target: str
    schema: str | None = None
    description: str = ""
    provider: str = "?"  # "distribution version" of the plugin that registered it

    def load(self) -> Any:
        try:
            return import_string(self.target)
        except (ImportError, AttributeError) as exc:
            raise PluginError(
                f"{self.kind} '{self.name}' (from {self.provider}) cannot be imported: "
                f"{self.target}: {type(exc).__name__}: {exc}",
                hint=f"reinstall {self.provider.split()[0]}, or pick another {self.kind}",
            ) from exc

    def load_schema(self) -> type | None:
        if not self.schema:
            return None
        try:
            return import_string(self.schema)
        except (ImportError, AttributeError) as exc:
            raise PluginError(
                f"schema of {self.kind} '{self.name}' (from {self.provider}) cannot be imported: {self.schema}: {exc}"
            ) from exc


@dataclass
class ComponentRegistry:
    components: dict[tuple[str, str], ComponentSpec] = field(default_factory=dict)

    def register_callback(self, provider: str) -> Register:
        """A ``register(kind, name, target=..., schema=..., description=...)`` bound to a provider."""

        def register(kind: str, name: str, *, target: str, schema: str | None = None, description: str = "") -> None:
            self.add(ComponentSpec(kind, name, target, schema, description, provider))

        return register

    def add(self, spec: ComponentSpec) -> None:
        if spec.kind not in KINDS:
            raise PluginError(
                f"{spec.provider} registers '{spec.name}' under unknown kind '{spec.kind}'."
                + did_you_mean(spec.kind, KINDS),
                hint=f"valid kinds: {choices_text(KINDS)}",
            )
        if ":" not in spec.target and "." not in spec.target:
            raise PluginError(
                f"{spec.provider} registers {spec.kind} '{spec.name}' with target "
                f"'{spec.target}', which is not an import string 'package.module:attribute'."
            )
        key = (spec.kind, spec.name)
        other = self.components.get(key)
        if other is not None and other != spec:
            # Like datasette: fail on a duplicate instead of letting entry-point order decide.
            raise PluginError(
                f"{spec.kind} '{spec.name}' is registered twice: by {other.provider} and by {spec.provider}.",
                hint="uninstall one of them, or choose the plugins to load with AIINFRA_LOAD_PLUGINS=dist1,dist2",
            )
        self.components[key] = spec

    def names(self, kind: str) -> list[str]:
        return sorted(name for (k, name) in self.components if k == kind)

    def get(self, kind: str, name: str) -> ComponentSpec:
        try:
            return self.components[(kind, name)]
        except KeyError:
            names = self.names(kind)
            raise UnknownComponentError(
                f"unknown {kind} '{name}'." + did_you_mean(name, names),
                hint=f"valid {kind} names: {choices_text(names)} (see `aiinfra plugins`)",
            ) from None

    def by_provider(self) -> dict[str, list[ComponentSpec]]:
        out: dict[str, list[ComponentSpec]] = {}
        for spec in self.components.values():
            out.setdefault(spec.provider, []).append(spec)
        return out
