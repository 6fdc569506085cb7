"""Range and cross-field rules of the config schemas.

A schema dataclass states its own rules in a ``check(self)`` method and reports a broken one with
:func:`fail`, naming the key relative to itself (``"port"``, ``"checkpoint.resume"``).
:func:`run_checks` walks the validated tree, calls every ``check`` (inner sections first) and
turns the failure into one :class:`~aiinfra.errors.ConfigError` that names the full key
(``server.port``). The rules therefore run in ``validate``, before torch is imported, and no stage
repeats them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aiinfra.errors import ConfigError


class FieldError(Exception):
    """A broken rule of one schema field; ``key`` is relative to the dataclass that raised it."""

    def __init__(self, key: str, message: str, hint: str | None = None):
        super().__init__(message)
        self.key, self.message, self.hint = key, message, hint


def fail(key: str, message: str, hint: str | None = None) -> None:
    """Raise from a schema's ``check``: ``fail("port", "must be between 0 and 65535, got 70000")``."""
    raise FieldError(key, message, hint)


def require(condition: bool, key: str, message: str, hint: str | None = None) -> None:
    """``fail`` unless ``condition`` holds."""
    if not condition:
        fail(key, message, hint)


def at_least(node: Any, minimum: float, *keys: str) -> None:
    """Every named numeric field of ``node`` is ``>= minimum`` (``None`` passes: "not set")."""
    for key in keys:
        value = getattr(node, key)
        if value is not None and value < minimum:
            fail(key, f"must be >= {minimum:g}, got {value!r}")


def run_checks(node: Any, prefix: str = "") -> None:
    """Call ``check()`` on ``node`` and every dataclass below it; raise ConfigError on a failure."""
    if isinstance(node, (list, tuple)):
        for i, item in enumerate(node):
            run_checks(item, f"{prefix}[{i}]")
        return
    if isinstance(node, dict):
        for key, item in node.items():
            run_checks(item, f"{prefix}.{key}" if prefix else str(key))
        return
    if not (dataclasses.is_dataclass(node) and not isinstance(node, type)):
        return
    for f in dataclasses.fields(node):
        run_checks(getattr(node, f.name), f"{prefix}.{f.name}" if prefix else f.name)
    check = getattr(node, "check", None)
    if callable(check):
        try:
            check()
        except FieldError as exc:
            key = f"{prefix}.{exc.key}" if prefix else exc.key
            raise ConfigError(f"{key}: {exc.message}", hint=exc.hint) from None
