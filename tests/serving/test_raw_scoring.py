"""`server=batch` on raw-row files: CSV and Parquet with strings, booleans, dates and gaps, scored
like the offline Predictor (classification and regression); a wrong value names column and file row."""

from __future__ import annotations

import subprocess

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from raw_helpers import COLUMNS, make_raw_model, raw_table
from serving_helpers import AIINFRA, env_for


def score(project, model, src, dst, *extra):
    return subprocess.run(
        [*AIINFRA, "serve", "server=batch", f"server.model_uri={model}", f"server.input={src}", f"server.output={dst}"]
        + ["server.batch_rows=100", *extra],
        cwd=project,
        env=env_for(project),
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.parametrize(("task", "suffix"), [("binary", "csv"), ("regression", "parquet")])
def test_raw_files_are_scored_like_offline(serving_project, tmp_path, task, suffix):
    from aiinfra.models.model_dir import Predictor

    model = make_raw_model(tmp_path / "model", task=task)
    predictor = Predictor.load(model)
    frame = raw_table(250, seed=4)[COLUMNS]
    frame["id"] = np.arange(len(frame))
    src, dst = tmp_path / f"in.{suffix}", tmp_path / f"out.{suffix}"
    if suffix == "csv":
        frame.to_csv(src, index=False)  # gaps: empty fields; booleans: True/False; dates: strings
    else:
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), src)
    proc = score(serving_project, model, src, dst)
    assert proc.returncode == 0, proc.stderr
    out = (pcsv.read_csv(dst) if suffix == "csv" else pq.read_table(dst)).to_pandas()
    x = predictor.encode(predictor.contract.check_frame(frame))
    if task == "regression":
        assert list(out.columns) == [*COLUMNS, "id", "prediction"]
        np.testing.assert_allclose(out["prediction"].to_numpy(), predictor.predict_values(x), rtol=1e-6)
    else:
        proba = predictor.predict_proba(x)
        assert list(out.columns) == [*COLUMNS, "id", "prediction", "score", "proba_0", "proba_1"]
        assert out["prediction"].tolist() == np.asarray(predictor.classes)[proba.argmax(1)].tolist()
        np.testing.assert_allclose(out["proba_1"].to_numpy(), proba[:, 1], rtol=1e-5, atol=1e-6)


def test_a_wrong_value_names_column_type_and_file_row(serving_project, tmp_path):
    model = make_raw_model(tmp_path / "model")
    frame = raw_table(250, seed=4)[COLUMNS]
    frame.loc[173, "signup"] = "soon"
    src = tmp_path / "in.csv"
    frame.to_csv(src, index=False)
    proc = score(serving_project, model, src, tmp_path / "out.csv")
    assert proc.returncode == 2, proc.stderr
    assert "column 'signup' expects an ISO 8601 date" in proc.stderr and "row 173" in proc.stderr
    assert not (tmp_path / "out.csv").exists()
