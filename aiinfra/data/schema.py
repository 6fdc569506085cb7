"""Config schemas of the built-in data sources (``conf/source/*.yaml``).

Import-light: validation imports this before pandas or torch. A plugin source subclasses
:class:`SourceConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING




@dataclass
class SourceConfig:
    """Fields every tabular source has."""

    type: str = MISSING
    target: str = "target"
    # Expected columns and dtypes ("float", "int", "str", "bool", "category"). None: infer.
    columns: Optional[dict[str, str]] = None
    # Columns allowed to contain NaN (all others must not).
    allow_nan: list[str] = field(default_factory=list)


@dataclass
class SklearnSourceConfig(SourceConfig):
    dataset: str = "breast_cancer"  # breast_cancer | wine | digits | iris


@dataclass
class FileSourceConfig(SourceConfig):
    path: str = MISSING


@dataclass
class SyntheticSourceConfig(SourceConfig):
    rows: int = 20000
    features: int = 16
    classes: int = 2
    informative: int = 8
    seed: int = 0


