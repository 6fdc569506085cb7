"""User-facing errors: one message that names the problem and the fix.

The CLI prints these without a traceback (exit status 2). Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class AiinfraError(Exception):
    """An error caused by user input (config, data, request, plugin), with a hint on how to fix it."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class ConfigError(AiinfraError):
    """A config key, value or type is wrong."""


class UnknownComponentError(ConfigError):
    """A component name is not registered for its kind."""


class DataValidationError(AiinfraError):
    """Input data does not match the declared schema."""


class PluginError(AiinfraError):
    """A plugin failed to load, conflicts with another one, or implements an unknown hook."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return " Did you mean 'x'?" for the closest choice, or "" when nothing is close."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def choices_text(choices: Iterable[str]) -> str:
    items = sorted(str(c) for c in choices)
    return ", ".join(items) if items else "(none)"


class BudgetExceeded(AiinfraError):
    """A stage stopped because it would pass its budget (``budget.max_cost``, ``budget.max_cpu_hours``)."""

    mlflow_status = "KILLED"  # stopped on purpose, not failed: the run's status in MLflow


class StorageError(AiinfraError):
    """An object store or file system could not be reached or read: names the URL (never a
    credential) and the setting that fixes it."""
