"""Export to ONNX: the file is self-contained and agrees with the torch model."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from aiinfra.errors import AiinfraError
from aiinfra.models.model_dir import Predictor
from aiinfra_onnx.export import export, read_meta
from aiinfra_onnx.runtime import OnnxPredictor, max_abs_difference


def test_onnx_predictions_equal_torch(model_dir, rows, tmp_path):
    path = export(model_dir, tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(str(path)))
    torch_model = Predictor.load(model_dir)
    ort_model = OnnxPredictor(path)
    p_torch, p_ort = torch_model.predict_proba(rows), ort_model.predict_proba(rows)
    assert p_ort.shape == (len(rows), 2)
    np.testing.assert_allclose(p_ort, p_torch, rtol=0, atol=1e-5)
    assert (ort_model.predict(rows) == torch_model.predict(rows)).all()
    # the model learned something: this is not two constant outputs agreeing
    assert (torch_model.predict(rows) == 1).mean() not in (0.0, 1.0)
    assert max_abs_difference(model_dir, path) < 1e-5
    for n in (1, 7, 1000):  # dynamic batch dimension
        assert ort_model.predict_proba(rows[:n]).shape == (min(n, len(rows)), 2)


def test_metadata_travels_in_the_file(model_dir, tmp_path):
    path = export(model_dir, tmp_path / "m.onnx")
    meta = read_meta(path)
    assert meta == json.loads((model_dir / "model.json").read_text())
    assert OnnxPredictor(path).features[:2] == ["mean radius", "mean texture"]


def test_not_a_model_directory(tmp_path):
    with pytest.raises(AiinfraError, match="is not an aiinfra model directory"):
        export(tmp_path, tmp_path / "m.onnx")


def test_export_command(aiinfra_project, model_dir, tmp_path):
    out = tmp_path / "cli.onnx"
    proc = aiinfra_project.cli("onnx-export", str(model_dir), "--out", str(out), "--check", check=True)
    assert out.is_file()
    diff = float(proc.stdout.strip().rsplit(" ", 1)[1])
    assert diff < 1e-5
    bad = aiinfra_project.cli("onnx-export", str(tmp_path / "nothing"))
    assert bad.returncode == 2 and "is not an aiinfra model directory" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_config_file_lists_every_schema_key():
    # Hydra only accepts overrides of keys present in the composed file: a key added to the
    # schema (e.g. by the built-in server's HttpServerConfig) must be added to onnx.yaml too.
    from importlib.resources import files

    from omegaconf import OmegaConf

    from aiinfra_onnx.schema import OnnxServerConfig

    shipped = OmegaConf.load(str(files("aiinfra_onnx") / "conf" / "server" / "onnx.yaml"))
    missing = set(OmegaConf.structured(OnnxServerConfig).keys()) - set(shipped.keys())
    assert not missing, f"conf/server/onnx.yaml lacks {sorted(missing)}"


def _typed(server: dict):
    from omegaconf import OmegaConf

    from aiinfra.config.validate import validate
    from aiinfra.plugins.manager import get_plugins

    return validate(OmegaConf.create({"server": server}), get_plugins().registry)


def test_loading_deletes_the_temporary_download_and_the_model_still_answers(model_dir, rows, tmp_path):
    """A registry download (``ResolvedModel.download_dir``) is a temporary copy: once the ONNX
    session is in memory the core loader deletes it, as for every runtime, so a long-running
    server's starts and reloads leave nothing behind."""
    import shutil

    from aiinfra.serving.runtime import ModelLoader
    from aiinfra.tracking.mlflow_setup import ResolvedModel

    loader = ModelLoader(_typed({"type": "onnx", "model_uri": str(model_dir)}))
    download = tmp_path / "aiinfra-model-x"
    copy = shutil.copytree(model_dir, download / "model")
    served = loader.load(ResolvedModel("models:/m/3", copy, "m", "3", download_dir=download))
    assert not download.exists()
    np.testing.assert_allclose(
        served.predict_proba(rows), Predictor.load(model_dir).predict_proba(rows), rtol=0, atol=1e-5
    )
    assert served.version == "3" and served.platform == "aiinfra_onnxruntime"
    # a local model directory is the user's: it stays, with its exported model.onnx
    local = shutil.copytree(model_dir, tmp_path / "local")
    loader.load(ResolvedModel(str(local), local, "local", "local"))
    assert (local / "model.onnx").is_file() and (local / "weights.pt").is_file()


def test_runtime_onnx_under_the_http_server_schema(model_dir, rows, tmp_path):
    """``server=http server.runtime=onnx``: the runtime takes its options' schema defaults."""
    import shutil

    from aiinfra.serving.runtime import ModelLoader

    local = shutil.copytree(model_dir, tmp_path / "model")
    served = ModelLoader(_typed({"type": "http", "model_uri": str(local), "runtime": "onnx"}))()
    assert served.platform == "aiinfra_onnxruntime" and (local / "model.onnx").is_file()
    np.testing.assert_allclose(
        served.predict_proba(rows[:5]), Predictor.load(model_dir).predict_proba(rows[:5]), rtol=0, atol=1e-5
    )


@pytest.mark.parametrize(
    "server,key",
    [
        ({"type": "onnx", "ort_threads": -1}, "server.ort_threads"),
        ({"type": "onnx", "port": 70000}, "server.port"),
        ({"type": "onnx", "runtime": "onnxx"}, "server.runtime"),
    ],
)
def test_onnx_server_rules_fail_in_validation(server, key):
    from aiinfra.errors import ConfigError

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        _typed(server)
