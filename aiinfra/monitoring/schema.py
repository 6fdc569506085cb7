"""Config schema of the built-in drift monitor (``conf/monitor/drift.yaml``).

Light on purpose: the CLI validates a config against these dataclasses before anything heavy
(evidently, pandas, torch) is imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class WindowConfig:
    """Which rows of the prediction log form the current window (ignored for a ``current`` file).

    At most one of ``last_hours``, ``start``/``end`` and ``last_rows`` is set; all null means the
    whole log.
    """

    # rows logged in the last N hours (counted back from now, UTC)
    last_hours: Optional[float] = None
    # an ISO-8601 range (UTC when no offset is given); either end may be null (open)
    start: Optional[str] = None
    end: Optional[str] = None
    # the newest N rows by timestamp
    last_rows: Optional[int] = None


@dataclass
class AlertConfig:
    """One alert sink (a component of kind ``sink``): ``log``, ``file``, ``webhook`` or a plugin's."""

    type: str = "log"
    # file: where drift alerts are appended as JSON lines (relative to the project root)
    path: Optional[str] = None
    # webhook: POST the verdict as JSON to this URL
    url: Optional[str] = None
    timeout_s: float = 5.0
    retries: int = 3
    backoff_s: float = 0.5
    headers: dict[str, str] = field(default_factory=dict)
    # send on every run, not only on drift (a heartbeat)
    always: bool = False


@dataclass
class RetrainConfig:
    # none: only the exit status; alert: sinks + hook; retrain: sinks + hook + the DVC pipeline
    policy: str = "alert"
    # the command run on drift with policy=retrain, in the project root
    command: list[str] = field(default_factory=lambda: ["{python}", "-m", "aiinfra", "repro"])
    timeout_s: float = 3600.0
    # also write the current window to <paths.feedback>/ (labels joined from monitor.feedback) for the next prepare
    export_window: bool = True


@dataclass
class DriftMonitorConfig:
    type: str = "drift"
    # What to compare with the reference: a Parquet/CSV file, or null for the prediction log.
    current: Optional[str] = None
    window: WindowConfig = field(default_factory=WindowConfig)
    # Columns to compare: empty = the features in <paths.prepared>/meta.json
    # (a list, not Optional: an Optional list that is null trips the config validator)
    columns: list[str] = field(default_factory=list)
    # Columns treated as categorical even when numeric (strings/bools always are)
    categorical: list[str] = field(default_factory=list)
    # Evidently's per-column method: auto, ks, psi, wasserstein, chisquare, jensenshannon, z
    method: str = "auto"
    threshold: Optional[float] = None  # null: the method's default
    per_column_method: dict[str, str] = field(default_factory=dict)
    per_column_threshold: dict[str, float] = field(default_factory=dict)
    # the dataset drifts when at least this share of columns drift
    drift_share: float = 0.5
    report_dir: str = "reports/drift"
    # Rows per side given to Evidently for the HTML/JSON report; verdicts always use every row.
    # 0: all rows (slow on large windows: Evidently takes 40-100 s on 1M rows here).
    report_sample_rows: int = 20000
    # Write the Evidently HTML/JSON report at all (the verdict JSON is always written)
    report: bool = True
    # always: every run; drift: only runs that find drift (a no-drift run then costs the verdict
    # alone, a few seconds, instead of Evidently's ~10 s import and rendering)
    report_on: str = "always"
    # exit status 1 on drift (cron/Airflow); the DVC stage sets false and reads the verdict
    fail_on_drift: bool = True
    # Compare the logged predictions with the reference target (reported, not in drift_share)
    prediction_drift: bool = True
    # Feedback labels (Parquet/CSV with request_id + the target column) joined by request_id
    feedback: Optional[str] = None
    alerts: list[AlertConfig] = field(default_factory=lambda: [AlertConfig(type="log")])
    retrain: RetrainConfig = field(default_factory=RetrainConfig)
    # watch mode: run every N seconds (0: run once); stop after max_runs runs (0: never)
    watch_interval_s: float = 0.0
    watch_max_runs: int = 0
    # worker threads for the per-column statistics (0: one per CPU core)
    threads: int = 0
