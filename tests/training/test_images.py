"""Images: scikit-learn's bundled 8x8 digits through the CNN component trains to good accuracy."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_digits_cnn_reaches_good_accuracy(tproject, aiinfra_main):
    # the preset conf/experiment/digits_cnn.yaml: source=digits, model=cnn, batch 64
    code, _, err = aiinfra_main("prepare", "experiment=digits_cnn")
    assert code == 0, err
    code, _, err = aiinfra_main(
        "train",
        "experiment=digits_cnn",
        "trainer.max_epochs=15",
        "trainer.early_stopping.enabled=false",
        "trainer.checkpoint.enabled=false",
    )
    assert code == 0, err
    summary = json.loads((tproject / "models" / "train_run.json").read_text())
    assert summary["metrics"]["val_acc"] >= 0.93, summary["metrics"]
    meta = json.loads((tproject / "models" / "model" / "model.json").read_text())
    assert meta["component"] == "cnn" and len(meta["features"]) == 64 and len(meta["classes"]) == 10
    assert summary["batch_size"] == 64
