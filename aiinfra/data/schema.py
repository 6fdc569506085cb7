"""Config schemas of the built-in data sources (``conf/source/*.yaml``).

Import-light: validation imports this before pandas or torch. A plugin source subclasses
:class:`SourceConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from omegaconf import MISSING

from aiinfra.config.checks import at_least, require


class ColumnType(StrEnum):
    """The declared type of a source column (``source.columns``)."""

    float = "float"  # integer columns pass too
    int = "int"
    str = "str"
    bool = "bool"
    category = "category"  # a pandas categorical, or strings


class SklearnDataset(StrEnum):
    """The datasets bundled with scikit-learn (no download)."""

    breast_cancer = "breast_cancer"
    wine = "wine"
    digits = "digits"
    iris = "iris"


class Mismatch(StrEnum):
    """What a later stage does when the composed ``source`` differs from the one the prepared data
    was made from (``meta.json``): the lineage is always taken from the prepared data."""

    warn = "warn"
    fail = "fail"


@dataclass
class SourceConfig:
    """Fields every tabular source has."""

    type: str = MISSING
    target: str = "target"
    # Expected columns and their types. None: take the columns the data has.
    columns: dict[str, ColumnType] | None = None
    # Columns allowed to contain NaN (all others must not).
    allow_nan: list[str] = field(default_factory=list)
    # a later stage (train) whose source config contradicts the prepared data's: warn, or fail
    mismatch: Mismatch = Mismatch.warn

    def check(self) -> None:
        require(bool(self.target), "target", "must name the target column")
        if self.columns is not None:
            require(bool(self.columns), "columns", "must list at least one column, or be null (take the data's)")


@dataclass
class SklearnSourceConfig(SourceConfig):
    dataset: SklearnDataset = SklearnDataset.breast_cancer


@dataclass
class FileSourceConfig(SourceConfig):
    path: str = MISSING


@dataclass
class SyntheticSourceConfig(SourceConfig):
    rows: int = 20000
    features: int = 16
    classes: int = 2
    informative: int = 8  # features that carry the signal (at most `features`)
    seed: int = 0

    def check(self) -> None:
        super().check()
        at_least(self, 1, "rows", "features", "informative")
        at_least(self, 2, "classes")
        require(
            self.informative <= self.features,
            "informative",
            f"must be <= source.features ({self.features}), got {self.informative}",
            hint=f"source.informative={min(self.features, 8)}",
        )
        # scikit-learn's make_classification puts two clusters per class on the corners of an
        # `informative`-dimensional hypercube: there must be enough corners
        require(
            self.classes * 2 <= 2**self.informative,
            "classes",
            f"{self.classes} classes need source.informative >= {(self.classes * 2 - 1).bit_length()}, "
            f"got {self.informative}",
        )
