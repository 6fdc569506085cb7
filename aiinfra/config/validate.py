"""Validate a composed config against the schemas; turn OmegaConf errors into one clear message.

Every component group (``source``, ``model``, ...) names its component with ``type:``; the
component's registered schema validates the group. Unknown keys get a did-you-mean and the list of
valid keys; wrong types name the key, the value and the expected type.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException

from aiinfra.config.schema import COMPONENT_GROUPS, RootConfig
from aiinfra.errors import ConfigError, UnknownComponentError, choices_text, did_you_mean
from aiinfra.plugins.registry import ComponentRegistry

#: ``_target_`` values a config may always instantiate (small, well-known, side-effect free).
DEFAULT_ALLOWED_TARGETS = frozenset(
    {
        "torch.optim.Adam",
        "torch.optim.AdamW",
        "torch.optim.SGD",
        "lightning.pytorch.callbacks.LearningRateMonitor",
        "lightning.pytorch.callbacks.EarlyStopping",
        "lightning.pytorch.callbacks.ModelCheckpoint",
        "lightning.pytorch.callbacks.RichModelSummary",
        "lightning.pytorch.callbacks.StochasticWeightAveraging",
    }
)


def _schema_keys(schema: Any, path: list[str]) -> list[str]:
    """Field names of the (nested) dataclass at ``path`` inside ``schema``."""
    node = schema
    for part in path:
        if not dataclasses.is_dataclass(node):
            return []
        fields = {f.name: f for f in dataclasses.fields(node)}
        if part not in fields:
            return []
        ftype = fields[part].type
        default = fields[part].default_factory if fields[part].default_factory is not dataclasses.MISSING else None
        node = default() if default else ftype
        node = type(node) if dataclasses.is_dataclass(node) and not isinstance(node, type) else node
    return [f.name for f in dataclasses.fields(node)] if dataclasses.is_dataclass(node) else []


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
        raise ConfigError(f"invalid value for config key '{key}': {msg}") from None


def check_targets(node: Any, allowed: set[str], path: str = "") -> None:
    """Refuse ``_target_`` values that are neither registered components nor allowlisted."""
    if isinstance(node, DictConfig) and not node._is_none() and not node._is_missing():
        for key in node.keys():
            value = node._get_node(key)
            sub = f"{path}.{key}" if path else str(key)
            if key == "_target_":
                target = str(OmegaConf.select(node, "_target_"))
                if target.replace(":", ".") not in allowed:
                    raise ConfigError(
                        f"'{sub}: {target}' is not allowed: configs may only instantiate "
                        "registered components and allowlisted targets.",
                        hint="register the class as a component in a plugin, or add it to "
                        "security.allowed_targets in conf/config.yaml",
                    )
            else:
                check_targets(value, allowed, sub)
    elif isinstance(node, ListConfig) and not node._is_none() and not node._is_missing():
        for i, item in enumerate(node._iter_ex(resolve=False)):
            check_targets(item, allowed, f"{path}[{i}]")


def validate(cfg: DictConfig, registry: ComponentRegistry) -> DictConfig:
    """Return the config merged onto its schemas (defaults filled in), or raise ConfigError."""
    # code named in config is checked first, on the raw tree, before anything else reads it
    allowed = set(DEFAULT_ALLOWED_TARGETS) | {s.target.replace(":", ".") for s in registry.components.values()}
    extra = OmegaConf.select(cfg, "security.allowed_targets", default=None) or []
    allowed |= {str(t).replace(":", ".") for t in extra}
    check_targets(cfg, allowed)
    root = _merge(RootConfig, cfg, "")
    for group, kind in COMPONENT_GROUPS.items():
        node = cfg.get(group)
        if node is None:
            continue
        if not isinstance(node, DictConfig) or "type" not in node:
            raise ConfigError(
                f"config group '{group}' must name its component with 'type:'.",
                hint=f"valid {kind} types: {choices_text(registry.names(kind))}",
            )
        try:
            spec = registry.get(kind, str(node.type))
        except UnknownComponentError as exc:
            raise UnknownComponentError(f"{group}.type: {exc.message}", exc.hint) from None
        schema = spec.load_schema()
        typed = _merge(schema, node, group) if schema else node
        root[group] = typed
    # a plain (untyped) config: stages read it; assignments to unknown keys still fail (struct)
    plain = OmegaConf.create(OmegaConf.to_container(root, resolve=True))
    OmegaConf.set_struct(plain, True)
    OmegaConf.set_readonly(plain, True)
    return plain

