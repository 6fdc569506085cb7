"""Config schemas of the built-in drift monitor (``conf/monitor/drift.yaml``) and alert sinks.

The single source of truth for the monitor's options: their defaults, their enumerations
(``StrEnum``: OmegaConf rejects any other value and names the key) and their rules (``check()``:
ranges and cross-field rules, :mod:`aiinfra.config.checks`). Everything here runs in config
validation, before evidently, pandas or torch is imported; nothing in the monitor re-checks it.

Alert sinks (``monitor.alerts``) are components of kind ``sink``: each entry is validated against
the schema its own ``type:`` registered (:class:`LogSinkConfig`, :class:`FileSinkConfig`,
:class:`WebhookSinkConfig`, or a plugin's subclass of :class:`SinkConfig`).
"""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from aiinfra.config.checks import at_least, fail, require
from aiinfra.config.validate import AiinfraDeprecationWarning


class Method(StrEnum):
    """A column's drift test (Evidently's stattest names); ``auto`` is Evidently's own choice.

    The same set as :data:`aiinfra.monitoring.stats.TESTS` (plus ``auto``; a test keeps them equal).
    """

    auto = "auto"
    ks = "ks"
    psi = "psi"
    wasserstein = "wasserstein"
    chisquare = "chisquare"
    jensenshannon = "jensenshannon"
    z = "z"


class ReportOn(StrEnum):
    """Which runs render Evidently's report: every run, or only runs that find drift."""

    always = "always"
    drift = "drift"


class DatetimeCompare(StrEnum):
    """How a ``datetime`` column of the data contract is compared: ``epoch`` its values as seconds
    since 1970 with the numeric methods (the model sees days since the epoch as an input, so a
    shift there is a shift in what it extrapolates on), ``skip`` not at all (a reason is logged)."""

    epoch = "epoch"
    skip = "skip"


class TextCompare(StrEnum):
    """How a ``text`` column of the data contract is compared: ``length`` its length in characters
    with the numeric methods, ``skip`` not at all (a reason is logged). Tokens themselves are not
    compared: the hashed buckets the model sees have no reference distribution worth testing."""

    length = "length"
    skip = "skip"


class Check(StrEnum):
    """A threshold of the monitor besides drift; a breached one is an entry of the verdict's
    ``breaches`` and alerts (and retrains) as drift does."""

    unseen_share = "unseen_share"  # monitor.max_unseen_share
    null_increase = "null_increase"  # monitor.max_null_increase
    accuracy = "accuracy"  # monitor.min_accuracy
    mae = "mae"  # monitor.max_mae
    rmse = "rmse"  # monitor.max_rmse


class RetrainPolicy(StrEnum):
    """What a drift verdict sets off: ``none`` the exit status only, ``alert`` sinks and the
    ``aiinfra_on_drift`` hook, ``retrain`` those and the retraining command."""

    none = "none"
    alert = "alert"
    retrain = "retrain"


def parse_time(text: str) -> dt.datetime:
    """An ISO-8601 time, UTC unless it carries an offset (``Z`` allowed); ValueError if it is none."""
    value = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@dataclass
class WindowConfig:
    """Which rows of the prediction log form the current window (only without ``monitor.current``).

    At most one of ``last_hours``, ``start``/``end`` and ``last_rows`` is set; all null means the
    whole log.
    """

    # rows logged in the last N hours (counted back from now, UTC)
    last_hours: float | None = None
    # an ISO-8601 range (UTC when no offset is given); either end may be null (open)
    start: str | None = None
    end: str | None = None
    # the newest N rows by timestamp
    last_rows: int | None = None

    @property
    def is_set(self) -> bool:
        return any(v is not None for v in (self.last_hours, self.start, self.end, self.last_rows))

    def check(self) -> None:
        kinds = [
            key
            for key, on in (
                ("last_hours", self.last_hours is not None),
                ("start" if self.start is not None else "end", self.start is not None or self.end is not None),
                ("last_rows", self.last_rows is not None),
            )
            if on
        ]
        if len(kinds) > 1:
            fail(
                kinds[1],
                f"cannot be combined with window.{kinds[0]}: a window is one kind",
                hint="set only one of window.last_hours, window.start/end, window.last_rows",
            )
        if self.last_hours is not None:
            require(self.last_hours > 0, "last_hours", f"must be > 0, got {self.last_hours!r}")
        at_least(self, 1, "last_rows")
        times = {}
        for key in ("start", "end"):
            text = getattr(self, key)
            if text is None:
                continue
            try:
                times[key] = parse_time(text)
            except ValueError:
                fail(
                    key,
                    f"{text!r} is not an ISO-8601 time",
                    hint=f"e.g. monitor.window.{key}=2026-11-28T13:00:00 (UTC unless an offset is given)",
                )
        if len(times) == 2:
            require(times["start"] < times["end"], "end", f"must be after start ({self.start}), got {self.end}")


@dataclass
class SinkConfig:
    """What every alert sink takes; a sink's own schema subclasses this (a plugin's too)."""

    type: str = "log"
    # send on every run, not only on drift (a heartbeat)
    always: bool = False


@dataclass
class LogSinkConfig(SinkConfig):
    """``log``: one log line (WARNING on drift) naming what drifted and where the report is."""


@dataclass
class FileSinkConfig(SinkConfig):
    """``file``: the verdict appended as one JSON line."""

    type: str = "file"
    # relative to the project root; null: <monitor.report_dir>/alerts.jsonl
    path: str | None = None


@dataclass
class WebhookSinkConfig(SinkConfig):
    """``webhook``: the verdict POSTed as JSON; connection errors, timeouts, 5xx and 429 are retried."""

    type: str = "webhook"
    url: str | None = None  # required: where to POST
    timeout_s: float = 5.0
    retries: int = 3
    backoff_s: float = 0.5  # doubles per retry (a 429's Retry-After wins)
    headers: dict[str, str] = field(default_factory=dict)

    def check(self) -> None:
        require(
            bool(self.url),
            "url",
            "is required: the URL the verdict is POSTed to",
            hint="e.g. monitor.alerts=[{type: webhook, url: https://hooks.example.com/...}]",
        )
        require(str(self.url).startswith(("http://", "https://")), "url", "must be an http:// or https:// URL")
        require(self.timeout_s > 0, "timeout_s", f"must be > 0, got {self.timeout_s!r}")
        at_least(self, 0, "retries", "backoff_s")


@dataclass
class AlertConfig(SinkConfig):
    """Deprecated: every built-in sink's options in one schema (before aiinfra 0.2).

    A plugin sink registered with ``schema="aiinfra.monitoring.schema:AlertConfig"`` still
    validates, with a warning; give it its own subclass of :class:`SinkConfig` instead.
    """

    path: str | None = None
    url: str | None = None
    timeout_s: float = 5.0
    retries: int = 3
    backoff_s: float = 0.5
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:  # runs when a validated config is built
        warnings.warn(
            f"alert sink '{self.type}' uses the schema aiinfra.monitoring.schema:AlertConfig, which is "
            "deprecated: register the sink with its own subclass of aiinfra.monitoring.schema.SinkConfig.",
            AiinfraDeprecationWarning,
            stacklevel=2,
        )


@dataclass
class RetrainConfig:
    policy: RetrainPolicy = RetrainPolicy.alert
    # the command run on drift with policy=retrain, in the project root ({python}: this interpreter)
    command: list[str] = field(default_factory=lambda: ["{python}", "-m", "aiinfra", "repro"])
    timeout_s: float = 3600.0
    # also write the current window to <paths.feedback>/ (labels joined from monitor.feedback) for the next prepare
    export_window: bool = True

    def check(self) -> None:
        require(
            len(self.command) > 0 and all(str(part) for part in self.command),
            "command",
            "must be a non-empty command line (a list of non-empty words)",
            hint='e.g. monitor.retrain.command=["{python}","-m","aiinfra","repro"]',
        )
        require(self.timeout_s > 0, "timeout_s", f"must be > 0, got {self.timeout_s!r}")


@dataclass
class DriftMonitorConfig:
    type: str = "drift"
    # What to compare with the reference: a Parquet/CSV file, or null for the prediction log.
    current: str | None = None
    window: WindowConfig = field(default_factory=WindowConfig)
    # Columns to compare: empty = the features in <paths.prepared>/meta.json
    # (a list, not Optional: an Optional list that is null trips the config validator)
    columns: list[str] = field(default_factory=list)
    # Columns treated as categorical even when numeric (strings/bools always are)
    categorical: list[str] = field(default_factory=list)
    method: Method = Method.auto
    threshold: float | None = None  # null: the method's default
    per_column_method: dict[str, Method] = field(default_factory=dict)
    per_column_threshold: dict[str, float] = field(default_factory=dict)
    # the dataset drifts when at least this share of columns drift
    drift_share: float = 0.5
    report_dir: str = "reports/drift"
    # Rows per side given to Evidently for the HTML/JSON report; verdicts always use every row.
    # 0: all rows (slow on large windows: Evidently takes 40-100 s on 1M rows here).
    report_sample_rows: int = 20000
    # Write the Evidently HTML/JSON report at all (the verdict JSON is always written)
    report: bool = True
    # drift: only runs that find drift render it (a no-drift run then costs the verdict alone, a
    # few seconds, instead of Evidently's ~4 s import and rendering)
    report_on: ReportOn = ReportOn.always
    # exit status 1 on drift (cron/Airflow); the DVC stage sets false and reads the verdict
    fail_on_drift: bool = True
    # Compare the logged predictions with the reference target (reported, not in drift_share)
    prediction_drift: bool = True
    # With a data contract (<paths.prepared>/contract.json): how datetime and text columns are compared
    datetime: DatetimeCompare = DatetimeCompare.epoch
    text: TextCompare = TextCompare.length
    # Data-quality thresholds (need a data contract), per column and window; null: not checked.
    # share of the window's rows whose category is not one of the contract's (categorical/boolean)
    max_unseen_share: float | None = 0.1
    # the window's missing share minus the train split's, per column
    max_null_increase: float | None = 0.1
    # Model-quality thresholds on the rows with feedback labels; null: not checked
    min_accuracy: float | None = None  # classification
    max_mae: float | None = None  # regression, in the target's units
    max_rmse: float | None = None
    # quality thresholds wait for this many labelled rows (a few labels are noise, not a verdict)
    min_labelled_rows: int = 30
    # Feedback labels (Parquet/CSV with request_id + the target column) joined by request id
    feedback: str | None = None
    # alert sinks: each entry is validated against the schema its own `type` registered
    alerts: list[Any] = field(default_factory=lambda: [{"type": "log"}], metadata={"component": "sink"})
    retrain: RetrainConfig = field(default_factory=RetrainConfig)
    # watch mode: run every N seconds (0: run once); stop after max_runs runs (0: never)
    watch_interval_s: float = 0.0
    watch_max_runs: int = 0
    # worker threads for the per-column statistics (0: one per CPU core)
    threads: int = 0

    def check(self) -> None:
        require(0.0 < self.drift_share <= 1.0, "drift_share", f"must be in (0, 1], got {self.drift_share!r}")
        at_least(self, 0, "threshold", "report_sample_rows", "watch_interval_s", "watch_max_runs", "threads")
        for key in ("max_unseen_share", "max_null_increase", "min_accuracy"):
            value = getattr(self, key)
            require(value is None or 0.0 <= value <= 1.0, key, f"must be in [0, 1] (a share), got {value!r}")
        at_least(self, 0, "max_mae", "max_rmse")
        at_least(self, 1, "min_labelled_rows")
        for column, value in self.per_column_threshold.items():
            require(value >= 0, f"per_column_threshold.{column}", f"must be >= 0, got {value!r}")
        if self.current and self.window.is_set:
            fail(
                "window",
                "applies to the prediction log, but monitor.current names a file",
                hint="drop the window settings, or set monitor.current=null to read the log",
            )
