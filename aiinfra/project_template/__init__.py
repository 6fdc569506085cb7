"""A minimal aiinfra project (``conf/``) that :mod:`aiinfra.testing` copies into temporary projects.

Small on purpose (a test's stage run finishes fast), but every component file lists every key of
its schema: Hydra accepts command-line overrides only of keys present in the composed files. When
a schema gains a key, ``python -m aiinfra.project_template`` rewrites the files (values already set
and the comment lines at the top are kept, keys the schema no longer has are dropped); a test fails
until then.

``dvc.yaml`` beside ``conf/`` is a copy of the repository's pipeline, packaged so that ``aiinfra
init`` can write it in a project made from a ``pip install`` (no checkout). ``python -m
aiinfra.project_template`` refreshes that copy too when it runs in a checkout; a test fails while
the two differ.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

CONF_DIR = Path(__file__).parent / "conf"
DVC_YAML = Path(__file__).parent / "dvc.yaml"
#: a copy of the repository's full ``conf/`` (every source, model, trainer, experiment preset):
#: what ``aiinfra init`` gives a user, packaged because a ``pip install`` has no checkout
PROJECT_CONF_DIR = Path(__file__).parent / "project_conf"
#: the repository's own pipeline, when this package runs from a checkout (absent in a wheel)
REPO_DVC_YAML = Path(__file__).resolve().parents[2] / "dvc.yaml"
REPO_CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def _known(schema: Any, node: Any, registry: Any) -> Any:
    """``node`` without the keys ``schema`` does not have (nested sections and components too)."""
    if not isinstance(node, dict):
        return node
    fields = {f.name: f for f in dataclasses.fields(schema)}
    out = {}
    for key, value in node.items():
        f = fields.get(key)
        if f is None:
            continue
        kind = f.metadata.get("component")
        if kind is not None:  # entries validated against the schema their own `type` registered
            out[key] = (
                [_component(kind, v, registry) for v in value]
                if isinstance(value, list)
                else (_component(kind, value, registry))
            )
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        out[key] = _known(type(default), value, registry) if dataclasses.is_dataclass(default) else value
    return out


def _component(kind: str, node: Any, registry: Any) -> Any:
    if not isinstance(node, dict) or "type" not in node:
        return node
    schema = registry.get(kind, str(node["type"])).load_schema()
    return _known(schema, node, registry) if schema is not None else node


def regenerate(conf_dir: Path = CONF_DIR) -> list[Path]:
    """Rewrite ``conf_dir/<group>/<name>.yaml`` with every key of the component's schema."""
    from omegaconf import OmegaConf

    from aiinfra.config.schema import COMPONENT_GROUPS
    from aiinfra.config.typed import to_dict
    from aiinfra.config.validate import validate
    from aiinfra.plugins.manager import get_plugins

    registry = get_plugins().registry
    changed = []
    for path in sorted(conf_dir.glob("*/*.yaml")):
        group = path.parent.name
        # the comment block at the top of the file (a file written by to_yaml keeps no other comments)
        header = list(itertools.takewhile(lambda line: line.startswith("#"), path.read_text().splitlines()))
        current = OmegaConf.to_container(OmegaConf.load(path))
        if registry.get(COMPONENT_GROUPS[group], str(current["type"])).load_schema() is None:
            continue
        # validate fills in every default, nested components' included, and checks the values
        typed = validate(OmegaConf.create({group: _component(COMPONENT_GROUPS[group], current, registry)}), registry)
        text = "\n".join([*header, OmegaConf.to_yaml(to_dict(getattr(typed, group))).rstrip()]) + "\n"
        if text != path.read_text():
            path.write_text(text)
            changed.append(path)
    return changed


def sync_dvc_yaml(source: Path = REPO_DVC_YAML, copy: Path = DVC_YAML) -> list[Path]:
    """Copy the repository's ``dvc.yaml`` over the packaged one; ``[copy]`` when it changed."""
    if not (source.is_file() and (source.parent / "pyproject.toml").is_file()):  # installed: no checkout
        return []
    text = source.read_text()
    if copy.is_file() and copy.read_text() == text:
        return []
    copy.write_text(text)
    return [copy]


def _yaml_files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*.yaml"))}


def sync_project_conf(source: Path = REPO_CONF_DIR, copy: Path = PROJECT_CONF_DIR) -> list[Path]:
    """Make the packaged ``project_conf/`` equal the repository's ``conf/`` (files added, changed
    and removed); the paths that changed. Nothing in an installed package (no checkout)."""
    if not (source.is_dir() and (source.parent / "pyproject.toml").is_file()):
        return []
    wanted, present = _yaml_files(source), _yaml_files(copy) if copy.is_dir() else {}
    changed = []
    for rel in sorted(set(present) - set(wanted)):
        (copy / rel).unlink()
        changed.append(copy / rel)
    for rel, text in wanted.items():
        if present.get(rel) != text:
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            (copy / rel).write_text(text)
            changed.append(copy / rel)
    return changed


def project_conf_differs(source: Path = REPO_CONF_DIR, copy: Path = PROJECT_CONF_DIR) -> list[str]:
    """The files in which the packaged ``project_conf/`` and the repository's ``conf/`` differ."""
    wanted, present = _yaml_files(source), _yaml_files(copy) if copy.is_dir() else {}
    return sorted(rel for rel in set(wanted) | set(present) if wanted.get(rel) != present.get(rel))
