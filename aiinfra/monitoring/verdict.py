"""The drift verdict: what ``aiinfra monitor`` writes to ``verdict.json`` and passes to sinks and to
the ``aiinfra_on_drift`` hook (``report=``). Standard library only: the hook spec refers to it.

Every key is written by the drift monitor (:mod:`aiinfra.monitoring.drift_monitor`); the keys marked
``NotRequired`` appear only when that step ran. Row counts live under ``rows`` only.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict


class ColumnDrift(TypedDict):
    """One column's test (:func:`aiinfra.monitoring.engine.judge_column`)."""

    column: str  # in the current data
    reference_column: str  # in the reference (the target, for the logged prediction)
    type: str  # "numerical" | "categorical"
    rows_reference: int
    rows_current: int
    missing_share_reference: float
    missing_share_current: float
    counted: bool  # counts towards the dataset drift share (features do; prediction and target not)
    method: str  # the resolved method (``auto`` only when a side had no values)
    score: float | None  # None: a side had no non-missing values
    threshold: float | None
    drifted: bool
    method_auto: NotRequired[bool]  # the method was Evidently's automatic choice
    note: NotRequired[str]  # why there is no score
    # with a data contract (aiinfra.monitoring.typed_columns)
    role: NotRequired[str]  # "feature" | "prediction" | "target" | "skipped"
    feature_type: NotRequired[str]  # the contract's type: numeric, categorical, boolean, datetime, text
    compared_as: NotRequired[str]  # what was tested: values, categories, labels, epoch, length
    null_share_train: NotRequired[float | None]  # the contract's (train split) missing share
    unseen_share_reference: NotRequired[float]  # rows whose category the contract lacks (categorical/boolean)
    unseen_share_current: NotRequired[float]
    unseen_values: NotRequired[dict[str, int]]  # the most frequent unseen categories of the window


class FeedbackResult(TypedDict):
    """Labels joined to the window by request id (``monitor.feedback``)."""

    path: str
    labelled_rows: int
    window_rows: int
    accuracy: float | None  # classification (None for regression)
    mae: NotRequired[float | None]  # regression: mean absolute error, in target units
    rmse: NotRequired[float | None]  # regression: root mean squared error
    target: ColumnDrift | None  # the labels against the reference target
    note: NotRequired[str]


class Breach(TypedDict):
    """A threshold besides drift that the window broke (``monitor.max_*`` / ``min_*``)."""

    check: str  # aiinfra.monitoring.schema.Check
    value: float
    threshold: float
    message: str
    column: NotRequired[str]


class RowCounts(TypedDict):
    current: int  # rows of the current window (every one is tested)
    reference: int
    report_sample: NotRequired[int]  # rows per side Evidently's report was rendered on
    report_sample_reference: NotRequired[int]


class WindowBounds(TypedDict):
    """The resolved prediction-log window (ISO times); None for a ``monitor.current`` file."""

    last_hours: float | None
    start: str | None
    end: str | None
    last_rows: int | None


class ReportPaths(TypedDict):
    report_dir: str
    verdict: str
    prometheus: NotRequired[str]
    history: NotRequired[str]
    drift_over_time: NotRequired[str]
    html: NotRequired[str]  # Evidently's report, when it was rendered
    json: NotRequired[str]


class Timings(TypedDict):
    verdict: float  # seconds
    report: NotRequired[float]
    total: NotRequired[float]


class AlertOutcome(TypedDict):
    """One sink's delivery (``sink``/``index``) or one hook implementation's call (``hook``)."""

    ok: bool
    sink: NotRequired[str]
    index: NotRequired[int]  # position in monitor.alerts
    hook: NotRequired[str]  # the plugin's name
    provider: NotRequired[str]  # "distribution version"
    error: NotRequired[str]


class RetrainOutcome(TypedDict):
    command: list[str]
    started: str
    ok: bool
    exit_code: int | None
    seconds: float
    window: NotRequired[str]  # the exported window file
    output_tail: NotRequired[str]
    error: NotRequired[str]


class DriftReport(TypedDict):
    """The verdict of one monitor run."""

    drift_detected: bool  # drift_share >= threshold (Evidently's rule), with at least one column
    drift_share: float  # drifted_columns / columns_total
    threshold: float  # monitor.drift_share
    drifted_columns: int
    columns_total: int
    columns: dict[str, ColumnDrift]  # the counted features, by name
    prediction: ColumnDrift | None  # logged predictions vs the reference target (not counted)
    target: ColumnDrift | None  # a labelled current file's target (not counted)
    feedback: FeedbackResult | None
    rows: RowCounts
    current: str  # what was compared: the file, or the log and its window
    window: WindowBounds | None
    skipped_files: list[str]  # unreadable log files left out, with why
    reference: str  # the reference Parquet file
    task: NotRequired[str]  # binary | multiclass | regression (from the contract; old data: classification)
    contract: NotRequired[str | None]  # the data contract the columns were typed by (None: none, as before)
    skipped_columns: NotRequired[dict[str, str]]  # contract columns not compared, with why
    thresholds: NotRequired[dict[str, float | int | None]]  # the data- and model-quality thresholds
    breaches: NotRequired[list[Breach]]  # data- and model-quality thresholds broken
    alert: NotRequired[bool]  # drift_detected or a breach: what sinks, the hook and retraining act on
    dataset_hash: str | None
    models: dict[str, list[str]]  # model_name / model_version values seen in the window
    finished: str  # ISO time (UTC)
    finished_unix: float
    seconds: Timings
    paths: ReportPaths
    report_skipped: NotRequired[str]
    report_error: NotRequired[str]
    alerts: NotRequired[list[AlertOutcome]]  # added after the sinks and the hook ran
    retrain: NotRequired[RetrainOutcome]
