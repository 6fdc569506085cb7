"""Monitoring components registered by aiinfra's built-in plugin (import strings only)."""

COMPONENTS = [
    ("monitor", "drift", "aiinfra.monitoring.stage:run_monitor",
     "aiinfra.monitoring.schema:DriftMonitorConfig", "data and prediction drift, Evidently reports"),
]
