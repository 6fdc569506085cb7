"""Validate a composed config against the schemas; return the typed tree the stages read.

Every component group (``source``, ``model``, ...) names its component with ``type:``; the
component's registered schema validates the group. A schema field declared with
``field(metadata={"component": KIND})`` holds components of that kind (``monitor.alerts`` holds
alert sinks): each entry is validated against the schema its own ``type`` registered, so a
plugin's component takes its own options. A string field declared
``field(metadata={"registered": KIND})`` names a component of that kind (``server.runtime``).
Unknown keys get a did-you-mean and the list of valid keys; wrong types and values outside an
enumeration name the key, the value and what is allowed; then every schema's ``check()`` runs
(ranges, cross-field rules: :mod:`aiinfra.config.checks`).
All of it happens before torch is imported.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException

from aiinfra.config.checks import run_checks
from aiinfra.config.schema import COMPONENT_GROUPS, RootConfig
from aiinfra.errors import ConfigError, UnknownComponentError, choices_text, did_you_mean
from aiinfra.plugins.registry import ComponentRegistry


class AiinfraDeprecationWarning(FutureWarning):
    """A config key or plugin API that still works but will go; shown to users by default."""


def _field_type(schema: Any, name: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(schema)}
    if name not in fields:
        return None
    f = fields[name]
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        return type(value) if dataclasses.is_dataclass(value) else None
    return f.type if isinstance(f.type, type) and dataclasses.is_dataclass(f.type) else None


def _schema_keys(schema: Any, path: list[str]) -> list[str]:
    """Field names of the (nested) dataclass at ``path`` inside ``schema``."""
    node = schema
    for part in path:
        if not dataclasses.is_dataclass(node):
            return []
        node = _field_type(node, part)
    return [f.name for f in dataclasses.fields(node)] if node is not None and dataclasses.is_dataclass(node) else []


def schema_keys_at(cfg: DictConfig, path: list[str], registry: ComponentRegistry) -> list[str]:
    """Keys the schema allows at ``path`` (e.g. ``["server"]``, ``["trainer", "checkpoint"]``),
    whether or not the YAML files of the composed config spell them out."""
    if path and path[0] in COMPONENT_GROUPS:
        node = cfg.get(path[0])
        if not isinstance(node, DictConfig) or "type" not in node:
            return []
        try:
            schema = registry.get(COMPONENT_GROUPS[path[0]], str(node.type)).load_schema()
        except ConfigError:
            return []
        return _schema_keys(schema, path[1:]) if schema else []
    return _schema_keys(RootConfig, path)


def _merge(schema: Any, node: Any, prefix: str) -> DictConfig:
    try:
        return OmegaConf.merge(OmegaConf.structured(schema), node)
    except ConfigKeyError as exc:
        full = str(exc.full_key or exc.key or "")
        parts = full.split(".") if full else []
        key = parts[-1] if parts else "?"
        valid = _schema_keys(schema, parts[:-1])
        where = ".".join(p for p in [prefix, *parts[:-1]] if p)
        raise ConfigError(
            f"unknown config key '{'.'.join(p for p in [prefix, full] if p)}'." + did_you_mean(key, valid),
            hint=f"valid keys under '{where or '(top level)'}': {choices_text(valid)}",
        ) from None
    except MissingMandatoryValue as exc:
        key = ".".join(p for p in [prefix, str(exc.full_key)] if p)
        raise ConfigError(
            f"config key '{key}' is required and has no value.",
            hint=f"set it on the command line: {key}=...",
        ) from None
    except OmegaConfBaseException as exc:
        key = ".".join(p for p in [prefix, str(exc.full_key or "")] if p)
        msg = getattr(exc, "msg", str(exc)).splitlines()[0]
        raise ConfigError(f"invalid value for config key '{key}': {msg}" + _enum_hint(msg)) from None


def _enum_hint(msg: str) -> str:
    """ " Did you mean 'x'?" for OmegaConf's "Invalid value 'y', expected one of [a, b]"."""
    match = re.match(r"Invalid value '([^']*)', expected one of \[([^\]]*)\]", msg)
    if not match:
        return ""
    hint = did_you_mean(match.group(1), [c.strip() for c in match.group(2).split(",")])
    return f".{hint}" if hint else ""


def _component(kind: str, node: Any, where: str, registry: ComponentRegistry) -> Any:
    """``node`` merged onto the schema of the ``kind`` component it names with ``type:``."""
    if not isinstance(node, DictConfig) or "type" not in node:
        raise ConfigError(
            f"'{where}' must name its {kind} with 'type:'.",
            hint=f"valid {kind} types: {choices_text(registry.names(kind))}",
        )
    try:
        spec = registry.get(kind, str(node.type))
    except UnknownComponentError as exc:
        raise UnknownComponentError(f"{where}.type: {exc.message}", exc.hint) from None
    schema = spec.load_schema()
    if schema is None:  # a component without a schema gets its config as written, read-only
        return node
    typed = _merge(schema, node, where)
    _nested_components(schema, typed, where, registry)
    return typed


def _registered_name(kind: str, value: Any, where: str, registry: ComponentRegistry) -> None:
    """A field declared ``metadata={"registered": KIND}`` names a registered component of that kind."""
    if value is None:
        return
    try:
        registry.get(kind, str(value))
    except UnknownComponentError as exc:
        raise UnknownComponentError(f"{where}: {exc.message}", exc.hint) from None


def _nested_components(schema: Any, typed: DictConfig, where: str, registry: ComponentRegistry) -> None:
    """Validate fields declared ``field(metadata={"component": KIND})`` against their own schemas,
    and check that fields declared ``metadata={"registered": KIND}`` name a registered component."""
    for f in dataclasses.fields(schema):
        kind = f.metadata.get("component")
        value = typed._get_node(f.name)
        if "registered" in f.metadata:
            _registered_name(f.metadata["registered"], typed[f.name], f"{where}.{f.name}", registry)
        if kind is None:
            sub = _field_type(schema, f.name)
            if sub is not None and isinstance(value, DictConfig) and not value._is_none():
                _nested_components(sub, value, f"{where}.{f.name}", registry)
            continue
        if isinstance(value, ListConfig) and not value._is_none():
            typed[f.name] = [
                _component(kind, item, f"{where}.{f.name}[{i}]", registry)
                for i, item in enumerate(value._iter_ex(resolve=False))
            ]
        elif isinstance(value, DictConfig) and not value._is_none():
            typed[f.name] = _component(kind, value, f"{where}.{f.name}", registry)


def _to_typed(root: DictConfig) -> RootConfig:
    # schema-less components stay DictConfigs (read-only) inside the typed tree
    untyped = {}
    for group in COMPONENT_GROUPS:
        node = root._get_node(group)
        if isinstance(node, DictConfig) and not node._is_none() and OmegaConf.get_type(node) in (dict, None):
            untyped[group] = OmegaConf.create(OmegaConf.to_container(node, resolve=True))
            root[group] = None
    try:
        typed = OmegaConf.to_object(root)
    except OmegaConfBaseException as exc:  # an interpolation that cannot resolve, for instance
        key = str(exc.full_key or "")
        msg = getattr(exc, "msg", str(exc)).splitlines()[0]
        raise ConfigError(f"invalid value for config key '{key}': {msg}") from None
    for group, node in untyped.items():
        OmegaConf.set_readonly(node, True)
        setattr(typed, group, node)
    return typed


def validate(cfg: DictConfig, registry: ComponentRegistry) -> RootConfig:
    """The config merged onto its schemas, defaults filled in, checks run; or a ConfigError.

    Returns the typed tree (:mod:`aiinfra.config.typed`): a ``RootConfig`` instance whose component
    groups are instances of their registered schemas.
    """
    root = _merge(RootConfig, cfg, "")
    for group, kind in COMPONENT_GROUPS.items():
        node = cfg.get(group)
        if node is not None:
            root[group] = _component(kind, node, group, registry)
    typed = _to_typed(root)
    run_checks(typed)
    if typed.security.allowed_targets:
        warnings.warn(
            "security.allowed_targets is deprecated and has no effect: aiinfra builds only registered "
            "components (by name, with 'type:') and never instantiates a '_target_' from config. "
            "Remove the key from conf/config.yaml.",
            AiinfraDeprecationWarning,
            stacklevel=2,
        )
    return typed
