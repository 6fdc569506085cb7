"""aiinfra's own components, registered through the same hooks and entry point as any plugin.

``[project.entry-points.aiinfra] builtin = "aiinfra.builtin"`` in pyproject.toml. Each area keeps
its list in a light ``components.py`` (import strings only): listing them imports nothing heavy.
"""

from __future__ import annotations

from aiinfra.deploy.components import COMPONENTS as DEPLOY
from aiinfra.monitoring.components import COMPONENTS as MONITORING
from aiinfra.plugins import hookimpl
from aiinfra.serving.components import COMPONENTS as SERVING

AIINFRA_API = ">=1.0,<2"


#: (kind, name, target, schema, description) of data sources, models and trainers
COMPONENTS = [
    (
        "source",
        "sklearn",
        "aiinfra.data.sources:SklearnSource",
        "aiinfra.data.schema:SklearnSourceConfig",
        "a dataset bundled with scikit-learn (breast_cancer, wine, digits, iris); no download",
    ),
    (
        "source",
        "bundled",
        "aiinfra.data.sources:BundledSource",
        "aiinfra.data.schema:BundledSourceConfig",
        "a real table bundled with palmerpenguins or vega_datasets (penguins, penguins_raw, cars, "
        "seattle_weather): strings, gaps, dates; no download",
    ),
    ("source", "csv", "aiinfra.data.sources:CSVSource", "aiinfra.data.schema:FileSourceConfig", "a CSV file"),
    (
        "source",
        "parquet",
        "aiinfra.data.sources:ParquetSource",
        "aiinfra.data.schema:FileSourceConfig",
        "a Parquet file or directory",
    ),
    (
        "source",
        "synthetic",
        "aiinfra.data.sources:SyntheticSource",
        "aiinfra.data.schema:SyntheticSourceConfig",
        "a seeded synthetic classification problem of any size",
    ),
    (
        "model",
        "mlp",
        "aiinfra.models.mlp:MLPClassifier",
        "aiinfra.models.schema:MLPConfig",
        "multi-layer perceptron for tabular classification",
    ),
    (
        "model",
        "cnn",
        "aiinfra.models.cnn:CNNClassifier",
        "aiinfra.models.schema:CNNConfig",
        "small convolutional network for images stored as flat pixel columns (digits)",
    ),
    (
        "trainer",
        "lightning",
        "aiinfra.training.trainer:build_trainer",
        "aiinfra.training.schema:LightningTrainerConfig",
        "a Lightning Trainer: CPU, GPU, DDP, multi-node",
    ),
]


def all_components() -> list[tuple[str, str, str, str | None, str]]:
    return [*COMPONENTS, *SERVING, *MONITORING, *DEPLOY]


@hookimpl
def aiinfra_register_components(register):
    for kind, name, target, schema, description in all_components():
        register(kind, name, target=target, schema=schema, description=description)


@hookimpl
def aiinfra_config_searchpath():
    # config files that ship in the package rather than in the project's conf/: server=ray
    return "pkg://aiinfra.deploy.conf"
