"""The schemas of sources, models and the Lightning trainer are the one place their options and
rules live: every enumerated option validates, every broken rule fails in validation with the full
key named, before torch is imported."""

from __future__ import annotations

import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from aiinfra.config.validate import validate
from aiinfra.data.schema import ColumnType, SklearnDataset
from aiinfra.errors import ConfigError
from aiinfra.models.schema import Scheduler
from aiinfra.plugins.manager import get_plugins
from aiinfra.training.schema import PRECISIONS, Accelerator, ClipAlgorithm, MonitorMode
from project_helpers import cli_env

SECTIONS = {
    "mlp": ("model", {"type": "mlp"}),
    "cnn": ("model", {"type": "cnn"}),
    "lightning": ("trainer", {"type": "lightning"}),
    "sklearn": ("source", {"type": "sklearn"}),
    "csv": ("source", {"type": "csv", "path": "data.csv"}),
    "synthetic": ("source", {"type": "synthetic"}),
}


def validated(component: str, overrides: dict):
    """``validate`` of a config holding one component section with ``overrides`` (dotted keys)."""
    group, section = SECTIONS[component]
    raw = OmegaConf.create({group: section})
    for key, value in overrides.items():
        OmegaConf.update(raw, f"{group}.{key}", value, force_add=True)
    return getattr(validate(raw, get_plugins().registry), group)


def error(component: str, overrides: dict) -> str:
    with pytest.raises(ConfigError) as exc:
        validated(component, overrides)
    return str(exc.value)


# --- enumerated options ------------------------------------------------------------------------


@pytest.mark.parametrize("component", ["mlp", "cnn"])
@pytest.mark.parametrize("value", [None, *Scheduler])
def test_every_scheduler_validates(component, value):
    assert validated(component, {"scheduler": None if value is None else str(value)}).scheduler == value


@pytest.mark.parametrize("value", list(SklearnDataset))
def test_every_sklearn_dataset_validates(value):
    assert validated("sklearn", {"dataset": str(value)}).dataset == value


@pytest.mark.parametrize("value", list(ColumnType))
def test_every_column_type_validates(value):
    assert validated("csv", {"columns": {"a": str(value)}}).columns == {"a": value}


@pytest.mark.parametrize("value", list(Accelerator))
def test_every_accelerator_validates(value):
    assert validated("lightning", {"accelerator": str(value)}).accelerator == value


@pytest.mark.parametrize("value", list(ClipAlgorithm))
def test_every_clip_algorithm_validates(value):
    assert validated("lightning", {"gradient_clip_algorithm": str(value)}).gradient_clip_algorithm == value


@pytest.mark.parametrize("value", list(MonitorMode))
def test_every_early_stopping_mode_validates(value):
    assert validated("lightning", {"early_stopping.mode": str(value)}).early_stopping.mode == value


@pytest.mark.parametrize("value", [None, *PRECISIONS])
def test_every_precision_validates(value):
    assert validated("lightning", {"precision": value}).precision == value


def test_precision_written_as_a_number_validates():
    assert validated("lightning", {"precision": 32}).precision == "32"


@pytest.mark.parametrize(
    "component, key, value, allowed",
    [
        ("mlp", "scheduler", "cosin", "cosine"),
        ("cnn", "scheduler", "none", "plateau"),
        ("sklearn", "dataset", "irs", "iris"),
        ("csv", "columns.a", "flot", "float"),
        ("lightning", "accelerator", "gpus", "cuda"),
        ("lightning", "gradient_clip_algorithm", "l2", "norm"),
        ("lightning", "early_stopping.mode", "maximum", "max"),
        ("lightning", "precision", "bf61-mixed", "bf16-mixed"),
    ],
)
def test_a_value_outside_an_option_names_the_full_key_and_the_choices(component, key, value, allowed):
    group = SECTIONS[component][0]
    message = error(component, {key: value})
    assert f"{group}.{key}" in message and value in message and allowed in message


# --- ranges and rules between fields -----------------------------------------------------------


@pytest.mark.parametrize(
    "component, overrides, key",
    [
        ("lightning", {"max_epochs": 0}, "trainer.max_epochs"),
        ("lightning", {"min_epochs": -1}, "trainer.min_epochs"),
        ("lightning", {"max_epochs": 3, "min_epochs": 4}, "trainer.min_epochs"),
        ("lightning", {"early_stopping.patience": -1}, "trainer.early_stopping.patience"),
        ("lightning", {"early_stopping.monitor": ""}, "trainer.early_stopping.monitor"),
        ("lightning", {"threads": -1}, "trainer.threads"),
        ("lightning", {"steps_per_call": 0}, "trainer.steps_per_call"),
        ("lightning", {"num_nodes": 0}, "trainer.num_nodes"),
        ("lightning", {"accumulate_grad_batches": 0}, "trainer.accumulate_grad_batches"),
        ("lightning", {"check_val_every_n_epoch": 0}, "trainer.check_val_every_n_epoch"),
        ("lightning", {"log_every_n_steps": 0}, "trainer.log_every_n_steps"),
        ("lightning", {"num_sanity_val_steps": -2}, "trainer.num_sanity_val_steps"),
        ("lightning", {"gradient_clip_val": -0.5}, "trainer.gradient_clip_val"),
        ("lightning", {"limit_train_batches": 1.5}, "trainer.limit_train_batches"),
        ("lightning", {"limit_val_batches": -0.1}, "trainer.limit_val_batches"),
        ("lightning", {"devices": 0}, "trainer.devices"),
        ("lightning", {"devices": "many"}, "trainer.devices"),
        ("lightning", {"devices": [0, -1]}, "trainer.devices"),
        ("lightning", {"devices": True}, "trainer.devices"),
        ("lightning", {"checkpoint.every_n_epochs": -1}, "trainer.checkpoint.every_n_epochs"),
        ("lightning", {"checkpoint.resume": ""}, "trainer.checkpoint.resume"),
        ("lightning", {"checkpoint.resume": "best"}, "trainer.checkpoint.resume"),
        ("mlp", {"lr": 0}, "model.lr"),
        ("mlp", {"lr": -1e-3}, "model.lr"),
        ("mlp", {"weight_decay": -0.1}, "model.weight_decay"),
        ("mlp", {"dropout": 1.0}, "model.dropout"),
        ("mlp", {"dropout": -0.1}, "model.dropout"),
        ("mlp", {"hidden": 0}, "model.hidden"),
        ("mlp", {"layers": -1}, "model.layers"),
        ("cnn", {"channels": 0}, "model.channels"),
        ("cnn", {"hidden": 0}, "model.hidden"),
        ("cnn", {"dropout": 1.5}, "model.dropout"),
        ("cnn", {"lr": 0}, "model.lr"),
        ("cnn", {"image_shape": [8, 8]}, "model.image_shape"),
        ("cnn", {"image_shape": [1, 0, 8]}, "model.image_shape"),
        ("synthetic", {"rows": 0}, "source.rows"),
        ("synthetic", {"features": 0}, "source.features"),
        ("synthetic", {"classes": 1}, "source.classes"),
        ("synthetic", {"features": 4, "informative": 5}, "source.informative"),
        ("synthetic", {"classes": 3, "informative": 2}, "source.classes"),
        ("csv", {"target": ""}, "source.target"),
        ("csv", {"columns": {}}, "source.columns"),
    ],
)
def test_a_broken_rule_fails_in_validation_naming_the_full_key(component, overrides, key):
    assert error(component, overrides).startswith(f"{key}: ")


@pytest.mark.parametrize(
    "component, overrides",
    [
        ("lightning", {"min_epochs": 0, "max_epochs": 1}),
        ("lightning", {"limit_train_batches": 0.25, "limit_val_batches": 10}),
        ("lightning", {"devices": -1}),
        ("lightning", {"devices": [0, 1]}),
        ("lightning", {"devices": "0,1"}),
        ("lightning", {"num_sanity_val_steps": -1}),
        ("lightning", {"checkpoint.resume": "last"}),
        ("lightning", {"checkpoint.resume": "checkpoints/epoch004.ckpt"}),
        ("mlp", {"layers": 0, "dropout": 0.0}),
        ("cnn", {"image_shape": [3, 16, 16]}),
        ("synthetic", {"features": 4, "informative": 4, "classes": 8}),
    ],
)
def test_values_at_the_edges_of_the_rules_validate(component, overrides):
    validated(component, overrides)


def test_devices_auto_under_torchrun_fails_in_validation(monkeypatch):
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "test")  # what torchrun sets in every process
    assert error("lightning", {"devices": "auto"}).startswith("trainer.devices: must be set explicitly under torchrun")
    validated("lightning", {"devices": 2})


def test_the_project_config_names_the_key_and_torch_is_never_imported(project):
    """Composed from conf/ as a stage would be: the rules fail there, in a process without torch."""
    code = (
        "import sys\n"
        "from aiinfra.errors import ConfigError\n"
        "from aiinfra.runner import load_config\n"
        "cases = [['trainer.max_epochs=0'], ['model.scheduler=cosin'], ['model.dropout=1'],\n"
        "         ['source=synthetic', 'source.classes=1'], ['trainer.early_stopping.mode=up'],\n"
        "         ['trainer.checkpoint.resume=best'], ['experiment=digits_cnn', 'model.image_shape=[8,8]']]\n"
        "for overrides in cases:\n"
        "    try:\n"
        "        load_config(overrides)\n"
        "    except ConfigError as exc:\n"
        "        print('ERR', str(exc).splitlines()[0])\n"
        "    else:\n"
        "        print('VALID', overrides)\n"
        "cfg = load_config(['trainer=gpu', 'model=cnn'])\n"
        "print('HEAVY', [m for m in ('torch', 'lightning', 'mlflow', 'pandas') if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=project, env=cli_env(), capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    errors = [line for line in out.stdout.splitlines() if line.startswith(("ERR", "VALID"))]
    keys = [
        "trainer.max_epochs",
        "model.scheduler",
        "model.dropout",
        "source.classes",
        "trainer.early_stopping.mode",
        "trainer.checkpoint.resume",
        "model.image_shape",
    ]
    assert len(errors) == len(keys) and all(line.startswith("ERR") for line in errors), out.stdout
    for line, key in zip(errors, keys, strict=True):
        assert key in line, (key, line)
    assert "HEAVY []" in out.stdout
