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
    """The declared type of a source column (``source.columns``). It is checked against the data
    and is also a hint for the feature type (:data:`COLUMN_FEATURE_TYPE`): float and int are
    numeric, bool is boolean, category is categorical, str is text or categorical (inferred from
    the values). ``features.types`` overrides either."""

    float = "float"  # integer columns pass too
    int = "int"
    str = "str"
    bool = "bool"
    category = "category"  # a pandas categorical, or strings


class FeatureType(StrEnum):
    """How a model input column is encoded (docs/features.md)."""

    numeric = "numeric"  # as is; gaps imputed (features.impute)
    categorical = "categorical"  # one-hot of the most frequent train categories + unknown
    boolean = "boolean"  # 0/1
    datetime = "datetime"  # year, month, day of week, day of year, days since the epoch
    text = "text"  # hashed token counts (features.text_buckets)


#: the feature type a declared ``source.columns`` type stands for; None: inferred from the values
#: (a ``str`` column is text or categorical)
COLUMN_FEATURE_TYPE: dict[str, FeatureType | None] = {
    "float": FeatureType.numeric,
    "int": FeatureType.numeric,
    "str": None,
    "bool": FeatureType.boolean,
    "category": FeatureType.categorical,
}


class Task(StrEnum):
    """What the model predicts: ``auto`` infers it from the target (docs/features.md)."""

    auto = "auto"
    binary = "binary"
    multiclass = "multiclass"
    regression = "regression"


class Impute(StrEnum):
    """The value that fills a numeric gap, computed on the train split."""

    median = "median"
    mean = "mean"
    zero = "zero"


#: features.text_buckets=null: one bucket per this many train rows, within TEXT_BUCKETS_AUTO
TEXT_ROWS_PER_BUCKET = 64
TEXT_BUCKETS_AUTO = (4, 32)


def text_buckets_for(configured: int | None, train_rows: int) -> int:
    """A text column's hashed token buckets: ``features.text_buckets``, or with it unset one per
    64 train rows, from 4 to 32. Each bucket is an input column of the network: with few rows and
    many buckets it learns which rare token sits in which bucket (the bundled cars table's car
    names: 278 train rows, R2 0.805 with 32 buckets, 0.876 with 4, 0.911 without the column)."""
    if configured is not None:
        return int(configured)
    low, high = TEXT_BUCKETS_AUTO
    return min(high, max(low, int(train_rows) // TEXT_ROWS_PER_BUCKET))


@dataclass
class FeaturesConfig:
    """The top-level ``features:`` section: column types, the task, the preprocessing that
    ``prepare`` fits on the train split (docs/features.md)."""

    # auto: regression for a numeric target with non-integer values or more than
    # regression_min_distinct distinct values; else binary (2 classes) or multiclass
    task: Task = Task.auto
    # column -> type, overriding the inferred one
    types: dict[str, FeatureType] = field(default_factory=dict)
    # columns left out of the model's inputs
    drop: list[str] = field(default_factory=list)
    # numeric gaps; categorical/text gaps are the unknown token, boolean gaps the train mode
    impute: Impute = Impute.median
    # add `<col>__missing` (0/1) for a column that had gaps in the train split
    missing_indicator: bool = True
    # the most frequent train categories kept per column; rarer and unseen ones are "unknown"
    max_categories: int = 50
    # hashed token buckets of a text column; None: auto (text_buckets_for: one per 64 train rows,
    # 4 to 32)
    text_buckets: int | None = None
    # a string or integer column with at least this share of distinct values is an identifier
    # (a row id): dropped, with the reason in the type table
    identifier_share: float = 0.95
    regression_min_distinct: int = 20

    def check(self) -> None:
        at_least(self, 1, "max_categories", "text_buckets", "regression_min_distinct")
        require(
            0.0 < self.identifier_share <= 1.0,
            "identifier_share",
            f"must be a share in (0, 1], got {self.identifier_share!r}",
            hint="features.identifier_share=0.95",
        )
        overlap = sorted(set(self.drop) & set(self.types))
        require(
            not overlap,
            "types",
            f"{', '.join(overlap)} both dropped (features.drop) and typed (features.types)",
            hint="remove the column from one of them",
        )


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
    # Deprecated, no effect: gaps in feature columns are imputed (features.impute) and rows
    # without a target are dropped with a warning. Kept so that existing configs still load.
    allow_nan: list[str] = field(default_factory=list)
    # a later stage (train) whose source config contradicts the prepared data's: warn, or fail
    mismatch: Mismatch = Mismatch.warn

    def check(self) -> None:
        require(bool(self.target), "target", "must name the target column")
        if self.columns is not None:
            require(bool(self.columns), "columns", "must list at least one column, or be null (take the data's)")


class BundledDataset(StrEnum):
    """Real tables bundled with the palmerpenguins and vega_datasets packages (no download)."""

    penguins = "penguins"  # palmerpenguins: 344 rows, strings, gaps; target species
    penguins_raw = "penguins_raw"  # the raw penguin table: dates, yes/no, ids, comments
    cars = "cars"  # vega_datasets: 406 cars, gaps, an origin category, a year date
    seattle_weather = "seattle_weather"  # vega_datasets: 1,461 days, a weather category


@dataclass
class BundledSourceConfig(SourceConfig):
    dataset: BundledDataset = BundledDataset.penguins


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
