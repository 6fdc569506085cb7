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
        hint="run from a project directory, set AIINFRA_PROJECT_DIR, or create one with `aiinfra init DIR`",
    )


def _group_options(conf_dir: Path, group: str) -> list[str]:
    """Options of a config group, from the project and every plugin search path."""
    from hydra.core.global_hydra import GlobalHydra

    gh = GlobalHydra.instance()
    if gh.is_initialized():
        return sorted(gh.config_loader().get_group_options(group))
    return sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))


def compose(overrides: list[str] | None = None, conf_dir: Path | None = None) -> DictConfig:
    """Compose ``conf/config.yaml`` with command-line overrides; errors become ConfigError."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException

    conf_dir = (conf_dir or find_project_root() / "conf").resolve()
    overrides = list(overrides or [])
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
        failure = _composition_error(failure, conf_dir, overrides)
    raise failure


def _missing_option(exc: Exception, conf_dir: Path) -> ConfigError:
    text = str(exc)
    m = re.search(r"Could not find '([^'/]+)/([^']+)'", text) or re.search(
        r"Could not load '([^'/]+)/([^']+)'", text
    )
    if m:
        group, option = m.group(1), m.group(2)
        options = getattr(exc, "options", None) or _group_options(conf_dir, group)
        return UnknownComponentError(
            f"unknown {group} '{option}'." + did_you_mean(option, options),
            hint=f"valid {group} choices: {choices_text(options)} (installed plugins add more: `aiinfra plugins`)",
        )
    return ConfigError(text.splitlines()[0])


def _composition_error(exc: Exception, conf_dir: Path, overrides: list[str]) -> ConfigError:
    text = str(exc)
    m = re.search(r"Could not override '([^']+)'", text) or re.search(
        r"Could not append to config. An item is already at '([^']+)'", text
    )
    cause = exc.__cause__
    if m and cause is not None and "not in struct" in str(cause) or (m and "is not in struct" in text):
        full = m.group(1)
        parent, _, key = full.rpartition(".")
        base = [o for o in overrides if not o.lstrip("+~").startswith(full)]
        valid: list[str] = []
        try:
            node = compose(base, conf_dir)
            sub = OmegaConf.select(node, parent) if parent else node
            if isinstance(sub, DictConfig):
                valid = [str(k) for k in sub.keys()]
        except ConfigError:
            pass
        return ConfigError(
            f"unknown config key '{full}'." + did_you_mean(key, valid),
            hint=f"valid keys under '{parent or '(top level)'}': {choices_text(valid)}; "
            f"to add a new key on purpose use +{full}=...",
        )
    detail = str(cause).splitlines()[0] if cause is not None else ""
    return ConfigError(text.splitlines()[0] + (f": {detail}" if detail else ""))


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
