"""Monitoring components registered by aiinfra's built-in plugin (import strings only)."""

COMPONENTS = [
    (
        "monitor",
        "drift",
        "aiinfra.monitoring.drift_monitor:run_monitor",
        "aiinfra.monitoring.schema:DriftMonitorConfig",
        "data and prediction drift on every row, Evidently HTML/JSON reports, alerts, retraining",
    ),
    (
        "sink",
        "log",
        "aiinfra.monitoring.sinks:log_sink",
        "aiinfra.monitoring.schema:LogSinkConfig",
        "drift alert as one log line",
    ),
    (
        "sink",
        "file",
        "aiinfra.monitoring.sinks:file_sink",
        "aiinfra.monitoring.schema:FileSinkConfig",
        "drift alert appended as a JSON line to a file",
    ),
    (
        "sink",
        "webhook",
        "aiinfra.monitoring.sinks:webhook_sink",
        "aiinfra.monitoring.schema:WebhookSinkConfig",
        "drift alert POSTed as JSON to a URL (retries, timeout)",
    ),
]
