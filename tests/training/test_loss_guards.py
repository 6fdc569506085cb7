"""Class weights from the train split, and the NaN/inf loss stop: a diverging learning rate and a
NaN in the training inputs each end the training at once with one error naming the step and the
likely cause (and the MLflow run is FAILED, no model is written)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from project_helpers import project_client, run_cli

SHORT = ("trainer.max_epochs=2", "trainer.checkpoint.enabled=false", "trainer.early_stopping.enabled=false")


def test_balanced_weights_come_from_the_train_split_counts():
    from aiinfra.training.module import balanced_class_weights

    w = balanced_class_weights(torch.tensor([0, 0, 0, 1, 0, 0]), 3)
    # 6 rows, 3 classes: 6 / (3 x 5), 6 / (3 x 1); a class train never has weighs 0
    assert w.tolist() == pytest.approx([0.4, 2.0, 0.0])


def test_class_weights_balanced_weigh_the_rare_class(project):
    rng = np.random.default_rng(0)
    n = 300
    label = np.where(rng.random(n) < 0.15, "rare", "common")
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=n) + (label == "rare") * 1.5,
            "kind": rng.choice(["p", "q"], n),
            "label": label,
        }
    )
    (project / "data" / "raw").mkdir(parents=True)
    frame.to_csv(project / "data" / "raw" / "imbalanced.csv", index=False)
    source = ("source=csv", "source.path=data/raw/imbalanced.csv", "source.target=label")
    run_cli(project, "prepare", *source, check=True)
    proc = run_cli(project, "train", *source, "trainer.class_weights=balanced", *SHORT, check=True)
    summary = json.loads((project / "models" / "train_run.json").read_text())
    counts = pd.read_parquet(project / "data" / "prepared" / "train.parquet")["label"].value_counts()
    expected = {c: counts.sum() / (2 * counts[c]) for c in ("common", "rare")}
    assert summary["class_weights"] == pytest.approx(expected, rel=1e-5), (summary["class_weights"], expected)
    assert summary["class_weights"]["rare"] > 2 > summary["class_weights"]["common"]
    assert "class weights (balanced, train split): common=" in proc.stderr
    run = project_client(project).get_run(summary["run_id"])
    assert run.data.params["trainer.class_weights"] == "balanced"


def _failed_run(project) -> None:
    client = project_client(project)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert [r.info.status for r in runs] == ["FAILED"], [r.info.status for r in runs]
    assert not (project / "models" / "model" / "weights.pt").exists()


def test_a_diverging_learning_rate_stops_at_the_first_nan_loss(tproject, aiinfra_main):
    code, _, err = aiinfra_main("train", "model.lr=1e30", *SHORT)
    assert code == 2, err
    assert "aiinfra: error: the training loss is nan at epoch 0, batch " in err, err
    assert "the learning rate (" in err and "too high" in err, err
    assert "hint: lower model.lr" in err and "Traceback" not in err
    _failed_run(tproject)


def test_a_nan_in_the_training_inputs_names_the_column(tproject, aiinfra_main):
    train = tproject / "data" / "prepared" / "train.parquet"
    frame = pd.read_parquet(train)
    frame.loc[7, "f3"] = np.nan  # what a hand-edited or foreign prepared split could hold
    frame.to_parquet(train, index=False)
    code, _, err = aiinfra_main("train", *SHORT)
    assert code == 2, err
    assert "the training loss is nan at epoch 0, batch 0" in err, err
    assert "the inputs hold NaN or infinite values in f3" in err, err
    assert "hint: fill or drop the missing values" in err and "Traceback" not in err
    _failed_run(tproject)
