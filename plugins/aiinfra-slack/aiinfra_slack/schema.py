"""Options of the ``slack`` alert sink (``monitor.alerts=[{type: slack, ...}]``), validated with the
rest of the config before anything heavy is imported."""

from __future__ import annotations

from dataclasses import dataclass

from aiinfra.config.checks import at_least, require
from aiinfra.monitoring.schema import SinkConfig


@dataclass
class SlackSinkConfig(SinkConfig):
    type: str = "slack"
    # the incoming webhook; null: $AIINFRA_SLACK_WEBHOOK_URL (keeps the secret out of the config)
    url: str | None = None
    timeout_s: float = 5.0
    retries: int = 3  # connection errors, 5xx and 429 (after Slack's Retry-After)
    backoff_s: float = 0.5
    # how many drifted columns the message lists (most drifted first)
    top_columns: int = 5

    def check(self) -> None:
        if self.url is not None:
            require(
                self.url.startswith("https://") or self.url.startswith("http://"),
                "url",
                "must be an https:// URL (a Slack incoming webhook)",
            )
        require(self.timeout_s > 0, "timeout_s", f"must be > 0, got {self.timeout_s!r}")
        at_least(self, 0, "retries", "backoff_s")
        at_least(self, 1, "top_columns")
