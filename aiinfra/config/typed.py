"""Views of a validated config: the typed tree the stages read, and its read-only DictConfig.

:func:`aiinfra.config.validate.validate` returns a :class:`~aiinfra.config.schema.RootConfig`
*instance*: plain dataclasses all the way down (enumerated options are ``StrEnum`` members, which
compare equal to their strings), every default filled in and every check passed. Stages read it
with attribute access only, no ``.get(key, default)``: the schema is the one place a default lives.

Hooks, MLflow params and the files aiinfra writes want a plain tree: :func:`to_dictconfig`,
:func:`to_dict` and :func:`to_yaml` give one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, OmegaConf


def to_dictconfig(cfg: Any) -> DictConfig:
    """A read-only, struct-mode ``DictConfig`` of a typed config (or of a section of it).

    This is what hooks receive as ``config``: the same values, and no way to change them.
    A ``DictConfig`` passes through (made read-only).
    """
    node = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(to_dict(cfg))
    OmegaConf.set_struct(node, True)
    OmegaConf.set_readonly(node, True)
    return node


def to_dict(node: Any) -> Any:
    """Plain containers (dicts, lists, strings, numbers) of a typed section; enums as their values."""
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return {f.name: to_dict(getattr(node, f.name)) for f in dataclasses.fields(node)}
    if isinstance(node, DictConfig) or type(node).__name__ == "ListConfig":
        return OmegaConf.to_container(node, resolve=True, enum_to_str=True)
    if isinstance(node, dict):
        return {str(k): to_dict(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [to_dict(v) for v in node]
    from enum import Enum

    if isinstance(node, Enum):
        return node.value
    return node


def to_yaml(cfg: Any) -> str:
    """The config as YAML (the format of ``params.yaml``)."""
    return OmegaConf.to_yaml(OmegaConf.create(to_dict(cfg)))


def string_settings(node: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(full key, value) of every string setting under ``node`` (dataclasses, dicts, lists):
    where validation and the storage preflight look for URLs."""
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        for f in dataclasses.fields(node):
            yield from string_settings(getattr(node, f.name), f"{prefix}.{f.name}" if prefix else f.name)
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from string_settings(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from string_settings(v, f"{prefix}[{i}]")
    elif isinstance(node, str):
        yield prefix, node
