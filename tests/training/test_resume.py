"""A training killed mid-epoch (SIGKILL) resumes from its last checkpoint with one override and
ends with the same metrics as an uninterrupted run with the same seed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from project_helpers import cli_env

# Small batches make each epoch long enough (~1 s) to kill the process inside one.
COMMON = ["trainer.max_epochs=5", "trainer.early_stopping.enabled=false", "data.batch_size=16", "seed=7"]


def _checkpoint_epoch(path) -> int:
    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=False)["epoch"])
    except Exception:  # being written right now
        return -1


def test_killed_training_resumes_to_the_same_metrics(tproject, aiinfra_main):
    # the reference: an uninterrupted run (in this process)
    code, _, err = aiinfra_main("train", *COMMON, "trainer.checkpoint.dir=ckpt-ref")
    assert code == 0, err
    reference = json.loads((tproject / "models" / "train_run.json").read_text())
    shutil.rmtree(tproject / "models")

    # the same training as a user's process, SIGKILLed inside the epoch after epoch index 2
    proc = subprocess.Popen([sys.executable, "-m", "aiinfra", "train", *COMMON], cwd=tproject, env=cli_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    last = tproject / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if last.is_file() and _checkpoint_epoch(last) >= 2:  # epochs 0-2 are done
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"training ended before it could be killed: {proc.stderr.read()[-2000:]}"
        time.sleep(0.2)  # well inside the next epoch
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (tproject / "models" / "train_run.json").exists()
    killed_at = _checkpoint_epoch(last)
    assert 2 <= killed_at < 5

    code, _, err = aiinfra_main("train", *COMMON, "trainer.checkpoint.resume=last")
    assert code == 0, err
    resumed = json.loads((tproject / "models" / "train_run.json").read_text())
    assert resumed["epochs"] == reference["epochs"] == 5
    for key, value in reference["metrics"].items():
        assert resumed["metrics"][key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


def test_resume_without_a_checkpoint_is_one_clear_error(tproject, aiinfra_main):
    code, _, err = aiinfra_main("train", "trainer.checkpoint.resume=last")
    assert code != 0 and "cannot resume" in err and "Traceback" not in err
