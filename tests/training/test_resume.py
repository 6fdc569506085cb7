"""A training killed mid-epoch (SIGKILL) resumes from its last checkpoint with one override and
ends with the same metrics as an uninterrupted run with the same seed, training only the epochs
that were left (a seeded run from scratch would reach the same metrics: the epochs the resumed
process trained are what tells a resume from a restart)."""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from project_helpers import cli_env, project_client

# Small batches make each epoch long enough (a few tenths of a second) to kill the process inside one.
# Plain progress lines (no bar): one "epoch N/M" line per epoch this process trained.
COMMON = [
    "trainer.max_epochs=5",
    "trainer.early_stopping.enabled=false",
    "data.batch_size=16",
    "seed=7",
    "trainer.progress_bar=false",
]


def _trained_epochs(caplog) -> list[int]:
    """The epochs (0-based) that this process trained, from the trainer's per-epoch progress lines."""
    return [
        int(r.args[0]) - 1
        for r in caplog.records
        if r.name == "aiinfra.train" and r.msg.startswith("epoch %d/%d") and isinstance(r.args, tuple)
    ]


def _checkpoint_epoch(path) -> int:
    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=False)["epoch"])
    except Exception:  # being written right now
        return -1


@pytest.mark.slow
def test_killed_training_resumes_to_the_same_metrics(tproject, aiinfra_main, caplog):
    caplog.set_level(logging.INFO, logger="aiinfra.train")
    # the reference: an uninterrupted run (in this process)
    code, _, err = aiinfra_main("train", *COMMON, "trainer.checkpoint.dir=ckpt-ref")
    assert code == 0, err
    assert _trained_epochs(caplog) == [0, 1, 2, 3, 4]  # what the progress lines show for a whole run
    caplog.clear()
    reference = json.loads((tproject / "models" / "train_run.json").read_text())
    shutil.rmtree(tproject / "models")

    # the same training as a user's process, SIGKILLed inside the epoch after epoch index 2
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiinfra", "train", *COMMON],
        cwd=tproject,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    last = tproject / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    seen: dict[int, float] = {}  # checkpoint epoch -> when it first appeared
    stamp = None  # the checkpoint's (mtime, size): it is read only when it changed
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                st = last.stat()
            except FileNotFoundError:
                st = None
            now = None if st is None else (st.st_mtime_ns, st.st_size)
            if now is not None and now != stamp:
                # (torch.load on every 10 ms tick took a core from the training it waits for)
                epoch = _checkpoint_epoch(last)
                if epoch >= 0:  # -1: being written right now, read it on the next tick
                    stamp = now
                    seen.setdefault(epoch, time.monotonic())
                    if epoch >= 2:  # epochs 0-2 are done
                        break
            time.sleep(0.01)
        assert proc.poll() is None, f"training ended before it could be killed: {proc.stderr.read()[-2000:]}"
        # half an epoch later: inside epoch 3, however fast epochs are on this machine
        epoch_s = seen[2] - seen[1] if 1 in seen else 0.2
        time.sleep(epoch_s / 2)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (tproject / "models" / "train_run.json").exists()
    killed_at = _checkpoint_epoch(last)
    assert 2 <= killed_at <= 3, killed_at  # at least one epoch is left to train after the resume

    code, _, err = aiinfra_main("train", *COMMON, "trainer.checkpoint.resume=last")
    assert code == 0, err
    # only the epochs after the checkpoint's were trained again (a restart would train 0-4)
    assert _trained_epochs(caplog) == list(range(killed_at + 1, 5))
    resumed = json.loads((tproject / "models" / "train_run.json").read_text())
    assert resumed["epochs"] == reference["epochs"] == 5
    for key, value in reference["metrics"].items():
        assert resumed["metrics"][key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    # the curve holds every epoch, those before the kill included (they travel in the checkpoint)
    with (tproject / "plots" / "training_curve.csv").open() as f:
        curve = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in curve] == [0, 1, 2, 3, 4]
    assert float(curve[-1]["val_acc"]) == pytest.approx(reference["metrics"]["val_acc"], abs=1e-6)
    # and so does the resumed MLflow run

    client = project_client(tproject)
    history = client.get_metric_history(resumed["run_id"], "val_loss")
    assert sorted(m.step for m in history) == [0, 1, 2, 3, 4]


def test_resume_trains_only_the_remaining_epochs(tproject, aiinfra_main, caplog):
    """The resume path without a kill (fast): two epochs, then the same training resumed with four
    trains epochs 2 and 3 only, and the curve and the MLflow run still hold all four."""
    caplog.set_level(logging.INFO, logger="aiinfra.train")
    common = ["trainer.early_stopping.enabled=false", "seed=7", "trainer.progress_bar=false"]
    code, _, err = aiinfra_main("train", *common, "trainer.max_epochs=2")
    assert code == 0, err
    assert _trained_epochs(caplog) == [0, 1]
    assert _checkpoint_epoch(tproject / "checkpoints" / "last.ckpt") == 1
    caplog.clear()
    code, _, err = aiinfra_main("train", *common, "trainer.max_epochs=4", "trainer.checkpoint.resume=last")
    assert code == 0, err
    assert _trained_epochs(caplog) == [2, 3]
    resumed = json.loads((tproject / "models" / "train_run.json").read_text())
    assert resumed["epochs"] == 4
    with (tproject / "plots" / "training_curve.csv").open() as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [0, 1, 2, 3]

    client = project_client(tproject)
    assert sorted(m.step for m in client.get_metric_history(resumed["run_id"], "val_loss")) == [0, 1, 2, 3]


def test_resume_without_a_checkpoint_is_one_clear_error(tproject, aiinfra_main):
    code, _, err = aiinfra_main("train", "trainer.checkpoint.resume=last")
    assert code != 0 and "cannot resume" in err and "Traceback" not in err


def test_resuming_a_finished_training_validates_it(tproject, aiinfra_main):
    """Killed after the last epoch (while logging the model, say): the resume has nothing left to
    train, validates the checkpoint for its metrics and finishes the stage."""
    common = ["trainer.max_epochs=2", "trainer.early_stopping.enabled=false", "seed=7"]
    code, _, err = aiinfra_main("train", *common)
    assert code == 0, err
    first = json.loads((tproject / "models" / "train_run.json").read_text())
    shutil.rmtree(tproject / "models")
    code, _, err = aiinfra_main("train", *common, "trainer.checkpoint.resume=last")
    assert code == 0, err
    resumed = json.loads((tproject / "models" / "train_run.json").read_text())
    assert resumed["metrics"]["val_acc"] == pytest.approx(first["metrics"]["val_acc"], abs=1e-6)
    assert resumed["metrics"]["val_loss"] == pytest.approx(first["metrics"]["val_loss"], rel=1e-5)
    assert (tproject / "models" / "model" / "weights.pt").is_file()
