"""`aiinfra serve server=batch`: a file in, the same rows with predictions out, equal to offline."""

from __future__ import annotations

import subprocess

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from serving_helpers import AIINFRA, env_for

FEATURES = ["a", "b", "c", "d"]


def run(project, *overrides):
    return subprocess.run(
        [*AIINFRA, "serve", "server=batch", *overrides],
        cwd=project,
        env=env_for(project),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_scores_file_like_offline(serving_project, model_dir, predictor, tmp_path, suffix):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2500, 4)).astype(np.float32)
    table = pa.table({**{f: x[:, i] for i, f in enumerate(FEATURES[::-1])}, "id": np.arange(2500)})
    src, dst = tmp_path / f"in.{suffix}", tmp_path / f"out.{suffix}"
    (pq.write_table if suffix == "parquet" else pcsv.write_csv)(table, src)
    proc = run(
        serving_project,
        f"server.model_uri={model_dir}",
        f"server.input={src}",
        f"server.output={dst}",
        "server.batch_rows=1000",
    )
    assert proc.returncode == 0, proc.stderr
    assert "scored 2500 rows" in proc.stderr
    out = pq.read_table(dst) if suffix == "parquet" else pcsv.read_csv(dst)
    assert out.column_names == [*FEATURES[::-1], "id", "prediction", "score", "proba_0", "proba_1"]
    got_x = np.stack([out.column(f).to_numpy() for f in FEATURES], axis=1).astype(np.float32)
    proba = predictor.predict_proba(got_x)
    assert out.column("prediction").to_pylist() == predictor.predict(got_x).tolist()
    np.testing.assert_allclose(out.column("proba_1").to_numpy(), proba[:, 1], rtol=1e-4, atol=1e-6)
    assert out.column("id").to_pylist() == list(range(2500))


def test_missing_column_is_a_clean_error(serving_project, model_dir, tmp_path):
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"a": [1.0], "b": [2.0], "c": [3.0]}), src)
    proc = run(
        serving_project,
        f"server.model_uri={model_dir}",
        f"server.input={src}",
        f"server.output={tmp_path / 'out.parquet'}",
    )
    assert proc.returncode == 2 and "missing the model's feature column(s): d" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out.parquet").exists()
