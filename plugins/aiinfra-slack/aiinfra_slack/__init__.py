"""aiinfra-slack: drift alerts (a ``sink`` component and ``aiinfra_on_drift``) and stage notifications to Slack."""

__version__ = "0.1.0"
