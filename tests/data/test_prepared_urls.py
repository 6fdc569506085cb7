"""The prepared data on an object store: ``paths.prepared=s3://...`` (a real S3 API: moto's server).

prepare writes the splits and JSON files there, ``PreparedData`` reads the same frames back, and a
short ``aiinfra train`` trains from it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from aiinfra.data.prepared import PreparedData
from aiinfra.errors import AiinfraError
from project_helpers import run_cli


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    return s3_server.env


def test_memory_prepare_to_s3_reads_back_and_trains(project: Path, s3_server, s3_env, tmp_path: Path) -> None:
    bucket = s3_server.bucket("prepared-urls")
    url = f"{bucket}/runs/prepared"
    run_cli(project, "prepare", f"paths.prepared={url}", check=True, **s3_env)
    run_cli(project, "prepare", f"paths.prepared={tmp_path / 'local'}", check=True)

    keys = {o["Key"] for o in s3_server.client().list_objects_v2(Bucket="prepared-urls")["Contents"]}
    expected = {"train.parquet", "val.parquet", "test.parquet", "reference.parquet", "meta.json"}
    expected |= {"contract.json", "preprocess.json", "profile.json"}
    assert {k.rsplit("/", 1)[-1] for k in keys} == expected

    remote, local = PreparedData.open(url), PreparedData.open(tmp_path / "local")
    assert isinstance(remote.root, str) and remote.root.startswith("s3://")
    assert remote.meta == local.meta
    assert remote.contract.to_dict() == local.contract.to_dict()
    assert remote.transform.to_dict() == local.transform.to_dict()
    for split in ("train", "val", "test", "reference"):
        pd.testing.assert_frame_equal(remote.read(split), local.read(split))
    x_remote, y_remote = remote.arrays("val")
    x_local, y_local = local.arrays("val")
    assert (x_remote == x_local).all() and (y_remote == y_local).all()

    # train reads the prepared data from the store (both loaders)
    for loader in ("memory", "stream"):
        proc = run_cli(
            project,
            "train",
            f"paths.prepared={url}",
            f"data.loader={loader}",
            "trainer.max_epochs=1",
            check=True,
            **s3_env,
        )
        assert proc.returncode == 0
        run = json.loads((project / "models" / "train_run.json").read_text())
        assert run["loader"] == loader and run["dataset_hash"] == remote.meta["dataset_hash"]


def test_missing_prepared_url_names_it(s3_server, s3_env) -> None:
    bucket = s3_server.bucket("prepared-missing")
    with pytest.raises(AiinfraError) as exc:
        PreparedData.open(f"{bucket}/nothing-here")
    assert "s3://prepared-missing/nothing-here" in str(exc.value) and "aiinfra prepare" in str(exc.value)
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in str(exc.value)
