"""The DAG's settings: defaults, then the project's ``conf/airflow.yaml``, then command-line flags.

``conf/airflow.yaml`` is a file of its own, not a key of ``conf/config.yaml``: aiinfra's root
schema is strict, and Airflow's settings are no stage's parameters (changing the schedule must not
re-run a DVC stage). Every value is checked here, before any DAG text exists, and an error names
where the bad value came from (the file or the flag) and what is allowed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiinfra.errors import ConfigError, choices_text, did_you_mean

CONFIG_FILE = Path("conf") / "airflow.yaml"
#: Airflow's schedule presets (``@continuous`` needs max_active_runs=1, which the DAG always has)
PRESETS = ("@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*?,/#LW-]+$")
#: Airflow's rule for DAG and task ids (airflow.utils.helpers.KEY_REGEX)
ID_PATTERN = re.compile(r"^[\w.-]{1,250}$")


@dataclass
class AirflowSettings:
    """What the DAG file is made of besides the pipeline (the one place a default lives)."""

    # null: the composed config's `project` (the MLflow experiment's name)
    dag_id: str | None = None
    # a cron expression, an Airflow preset (@daily, ...) or null (none): triggered runs only
    schedule: str | None = None
    retries: int = 1
    retry_delay_s: float = 300.0
    # null: Airflow's default_pool; a named pool must exist (`airflow pools set NAME SLOTS DESC`)
    pool: str | None = None
    tags: list[str] = field(default_factory=lambda: ["aiinfra", "dvc"])
    # the first logical date of a scheduled DAG (ISO date); no catch-up of the runs before today
    start_date: str = "2025-01-01"


KEYS = tuple(f.name for f in dataclasses.fields(AirflowSettings))


def load(project: Path, flags: dict[str, Any]) -> AirflowSettings:
    """Defaults < ``<project>/conf/airflow.yaml`` < ``flags`` (the non-None ones); checked."""
    settings = AirflowSettings()
    path = project / CONFIG_FILE
    if path.is_file():
        _apply(settings, _read(path), str(path))
    _apply(settings, {k: v for k, v in flags.items() if v is not None}, "the command line")
    return settings


def _read(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}", hint="fix the file or delete it") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of settings, got {type(data).__name__}", hint=_keys_hint())
    return data


def _keys_hint() -> str:
    return f"settings: {choices_text(KEYS)} (see aiinfra_airflow/airflow.yaml in the plugin)"


def _apply(settings: AirflowSettings, values: dict[str, Any], source: str) -> None:
    for key, value in values.items():
        if key not in KEYS:
            raise ConfigError(f"{source}: unknown Airflow setting {key!r}.{did_you_mean(key, KEYS)}", hint=_keys_hint())
        setattr(settings, key, _check(key, value, source))


def _flag(key: str, source: str) -> str:
    """How the user wrote the setting: ``--retry-delay-s`` on the command line, the key in the file."""
    return f"--{key.replace('_', '-')}" if source == "the command line" else f"{source}: {key}"


def _check(key: str, value: Any, source: str) -> Any:
    where = _flag(key, source)
    if key == "retries":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{where}: must be a whole number >= 0, got {value!r}", hint="e.g. retries: 2")
        return value
    if key == "retry_delay_s":
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{where}: must be a number of seconds >= 0, got {value!r}", hint="e.g. 300")
        return float(value)
    if key in ("dag_id", "pool"):
        if value is None:
            return None
        if not isinstance(value, str) or not ID_PATTERN.match(value):
            raise ConfigError(
                f"{where}: {value!r} is not a valid Airflow {key.replace('_', ' ')}",
                hint="letters, digits, '_', '.', '-' (at most 250)",
            )
        return value
    if key == "schedule":
        return _schedule(value, where)
    if key == "tags":
        if not isinstance(value, list) or not all(isinstance(t, str) and t for t in value):
            raise ConfigError(
                f"{where}: must be a list of non-empty strings, got {value!r}", hint="tags: [aiinfra, ml]"
            )
        return list(value)
    if key == "start_date":
        try:
            dt.date.fromisoformat(str(value))
        except ValueError:
            raise ConfigError(f"{where}: must be an ISO date, got {value!r}", hint="e.g. 2025-01-01") from None
        return str(value)
    raise AssertionError(key)  # pragma: no cover - KEYS and _check agree


def _schedule(value: Any, where: str) -> str | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", "")):
        return None
    text = str(value).strip()
    if text.startswith("@"):
        if text not in PRESETS:
            raise ConfigError(
                f"{where}: unknown schedule preset {text!r}.{did_you_mean(text, PRESETS)}",
                hint=f"one of {', '.join(PRESETS)}, a cron expression ('0 3 * * *') or none",
            )
        return text
    fields = text.split()
    if len(fields) not in (5, 6) or not all(_CRON_FIELD.match(f) for f in fields):
        raise ConfigError(
            f"{where}: {text!r} is neither a cron expression nor a preset",
            hint=f"five cron fields ('0 3 * * *' = 03:00 daily), one of {', '.join(PRESETS)}, or none",
        )
    return " ".join(fields)
