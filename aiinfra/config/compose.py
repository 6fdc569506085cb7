"""Compose the config tree (``conf/`` plus plugin config dirs) with Hydra's Compose API.

One composer serves every entry point: ``aiinfra <stage> overrides...``, ``aiinfra compose``
(which writes ``params.yaml`` for ``dvc repro``) and ``dvc exp run`` (DVC composes the same tree
with the same search path, through the Hydra SearchPathPlugin in ``hydra_plugins/``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from aiinfra.errors import ConfigError, UnknownComponentError, choices_text, did_you_mean

CONFIG_NAME = "config"
PROJECT_ENV = "AIINFRA_PROJECT_DIR"


def find_project_root(start: Path | None = None) -> Path:
    """The nearest directory (cwd or a parent) with ``conf/config.yaml``."""
    env = os.environ.get(PROJECT_ENV)
    if env:
        root = Path(env).resolve()
        if not (root / "conf" / f"{CONFIG_NAME}.yaml").is_file():
            raise ConfigError(f"{PROJECT_ENV}={env} has no conf/{CONFIG_NAME}.yaml")
        return root
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "conf" / f"{CONFIG_NAME}.yaml").is_file():
            return candidate
    raise ConfigError(
        f"no aiinfra project here: conf/{CONFIG_NAME}.yaml not found in {here} or its parents.",
        hint="run from a project directory (one with conf/config.yaml, like this repository), or set "
        "AIINFRA_PROJECT_DIR=/path/to/project",
    )


def _group_options(conf_dir: Path, group: str) -> list[str]:
    """Options of a config group, from the project and every plugin search path."""
    from hydra.core.global_hydra import GlobalHydra

    gh = GlobalHydra.instance()
    if gh.is_initialized():
        return sorted(gh.config_loader().get_group_options(group))
    return sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))


def compose(overrides: list[str] | None = None, conf_dir: Path | None = None) -> DictConfig:
    """Compose ``conf/config.yaml`` with command-line overrides; errors become ConfigError.

    Hydra only lets an override set keys that the composed YAML spells out. A key that the
    component's schema has but its YAML file leaves out (``server.workers=2`` against a short
    ``conf/server/http.yaml``), or a dict value for a schema key (``monitor.per_column_method={f0:
    ks}``), is legitimate: it is forced in (``++key=value``) and the schema still checks it during
    validation.
    """
    conf_dir = (conf_dir or find_project_root() / "conf").resolve()
    overrides = list(overrides or [])
    for _ in range(len(overrides) + 1):
        result = _compose_once(overrides, conf_dir)
        if isinstance(result, DictConfig):
            return result
        if not isinstance(result, _NotInStruct):
            raise result
        fixed = _add_schema_key(result.key, overrides, conf_dir)
        if fixed is None:
            raise _unknown_key_error(result.key, overrides, conf_dir)
        overrides = fixed
    raise ConfigError("cannot compose the config")  # pragma: no cover - loop bound


class _NotInStruct(Exception):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _compose_once(overrides: list[str], conf_dir: Path) -> DictConfig | Exception:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException

    failure: Exception | None = None
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3", job_name="aiinfra"):
        try:
            return hydra_compose(config_name=CONFIG_NAME, overrides=overrides)
        except MissingConfigException as exc:
            failure = _missing_option(exc, conf_dir)
        except OverrideParseException as exc:
            failure = ConfigError(
                f"cannot parse override: {exc}",
                hint="overrides look like key=value, group=option, +new.key=value, ~key",
            )
        except ConfigCompositionException as exc:
            failure = exc
    # outside the Hydra context: building the message may compose again
    if isinstance(failure, ConfigCompositionException):
        text, cause = str(failure), str(failure.__cause__ or "")
        m = re.search(r"Could not override '([^']+)'", text)
        if m and "not in struct" in cause + text:
            return _NotInStruct(m.group(1))
        detail = cause.splitlines()[0] if cause else ""
        return ConfigError(text.splitlines()[0] + (f": {detail}" if detail else ""))
    assert failure is not None
    return failure


def _without(overrides: list[str], key: str) -> list[str]:
    return [o for o in overrides if o.lstrip("+~").split("=", 1)[0] != key]


def _valid_keys(key: str, overrides: list[str], conf_dir: Path) -> tuple[list[str], list[str]]:
    """(keys in the composed YAML, keys the schema allows) at the parent of ``key``."""
    from aiinfra.config.validate import schema_keys_at
    from aiinfra.plugins.manager import get_plugins

    parent = key.rpartition(".")[0]
    base = _compose_once(_without(overrides, key), conf_dir)
    if not isinstance(base, DictConfig):
        return [], []
    sub = OmegaConf.select(base, parent) if parent else base
    present = [str(k) for k in sub] if isinstance(sub, DictConfig) else []
    allowed = schema_keys_at(base, parent.split(".") if parent else [], get_plugins().registry)
    return present, allowed


def _add_schema_key(key: str, overrides: list[str], conf_dir: Path) -> list[str] | None:
    present, allowed = _valid_keys(key, overrides, conf_dir)
    if key.rpartition(".")[2] not in allowed:
        return None
    # ++ adds the key, or merges into it (a dict value such as {f00: ks} into an empty dict)
    return [f"++{o}" if o.split("=", 1)[0] == key else o for o in overrides]


def _unknown_key_error(full: str, overrides: list[str], conf_dir: Path) -> ConfigError:
    parent, _, key = full.rpartition(".")
    present, allowed = _valid_keys(full, overrides, conf_dir)
    valid = sorted(set(present) | set(allowed))
    return ConfigError(
        f"unknown config key '{full}'." + did_you_mean(key, valid),
        hint=f"valid keys under '{parent or '(top level)'}': {choices_text(valid)}; "
        f"to add a new key on purpose use +{full}=...",
    )


def _missing_option(exc: Exception, conf_dir: Path) -> ConfigError:
    text = str(exc)
    m = re.search(r"Could not find '([^'/]+)/([^']+)'", text) or re.search(r"Could not load '([^'/]+)/([^']+)'", text)
    if m:
        group, option = m.group(1), m.group(2)
        options = getattr(exc, "options", None) or _group_options(conf_dir, group)
        return UnknownComponentError(
            f"unknown {group} '{option}'." + did_you_mean(option, options),
            hint=f"valid {group} choices: {choices_text(options)} (installed plugins add more: `aiinfra plugins`)",
        )
    return ConfigError(text.splitlines()[0])


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def write_params(cfg: DictConfig, path: Path) -> bool:
    """Write the resolved config to ``params.yaml``; return True when the file changed."""
    text = to_yaml(cfg)
    if path.is_file() and OmegaConf.create(path.read_text()) == OmegaConf.create(text):
        return False
    path.write_text(text)
    return True


def load_params(path: Path) -> DictConfig:
    if not path.is_file():
        raise ConfigError(f"{path} not found.", hint="create it with `aiinfra compose`")
    cfg = OmegaConf.load(path)
    assert isinstance(cfg, DictConfig)
    return cfg
