"""The ``features:`` section: composed and validated with the rest of the config, ranges and
enumerations named by their full key (before pandas or torch is imported)."""

from __future__ import annotations

import pytest

from aiinfra.config.compose import compose
from aiinfra.config.validate import validate
from aiinfra.data.schema import FeaturesConfig, FeatureType, Impute, Task
from aiinfra.errors import ConfigError
from aiinfra.plugins.manager import build_plugin_manager
from project_helpers import REPO


@pytest.fixture(scope="module")
def registry():
    return build_plugin_manager().registry


def _validated(overrides, registry):
    return validate(compose(overrides, REPO / "conf"), registry)


def test_defaults_match_the_schema_and_overrides_are_typed(registry):
    cfg = _validated([], registry)
    assert cfg.features == FeaturesConfig()
    cfg = _validated(["features.task=regression", "features.types={a: text}", "features.impute=mean"], registry)
    assert cfg.features.task is Task.regression and cfg.features.impute is Impute.mean
    assert cfg.features.types == {"a": FeatureType.text}


@pytest.mark.parametrize(
    "override, expected",
    [
        ("features.identifier_share=0", "features.identifier_share: must be a share in (0, 1], got 0.0"),
        ("features.identifier_share=1.5", "features.identifier_share: must be a share in (0, 1]"),
        ("features.max_categories=0", "features.max_categories: must be >= 1, got 0"),
        ("features.text_buckets=0", "features.text_buckets: must be >= 1, got 0"),
        ("features.task=ranking", "features.task"),
        ("features.types={a: words}", "features.types"),
    ],
)
def test_bad_features_values_name_the_key(registry, override, expected):
    with pytest.raises(ConfigError) as exc:
        _validated([override], registry)
    assert expected in str(exc.value)


def test_a_column_both_dropped_and_typed_is_an_error(registry):
    with pytest.raises(ConfigError, match="features.types: a both dropped"):
        _validated(["features.drop=[a]", "features.types={a: numeric}"], registry)


@pytest.mark.parametrize("experiment, source", [("penguins", "penguins"), ("cars_regression", "cars")])
def test_presets_validate(registry, experiment, source):
    cfg = _validated([f"experiment={experiment}"], registry)
    assert cfg.source.type == "bundled" and cfg.source.dataset == source
    if experiment == "cars_regression":
        assert cfg.register.gate.metric == "test_rmse" and cfg.register.gate.mode == "min"
        assert cfg.register.gate.min is None and cfg.features.task is Task.regression
