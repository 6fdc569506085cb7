"""Config schema of the built-in drift monitor (``conf/monitor/drift.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class DriftMonitorConfig:
    type: str = "drift"
    # What to compare with the reference: a Parquet/CSV file, or null for the prediction log.
    current: Optional[str] = None
    # Evidently's per-column method: auto, ks, psi, wasserstein, chisquare, jensenshannon ...
    method: str = "auto"
    threshold: Optional[float] = None  # null: the method's default
    per_column_method: dict[str, str] = field(default_factory=dict)
    per_column_threshold: dict[str, float] = field(default_factory=dict)
    # the dataset drifts when at least this share of columns drift
    drift_share: float = 0.5
    report_dir: str = "reports/drift"
    # exit status 1 on drift (cron/Airflow); the DVC stage sets false and reads the verdict
    fail_on_drift: bool = True
