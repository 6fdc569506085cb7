"""`aiinfra deploy image`: the build context, its Dockerfile replayed into a fresh venv offline,
and the ENTRYPOINT answering a prediction on 127.0.0.1 (then draining on SIGTERM)."""

from __future__ import annotations

import signal
import subprocess
import time

import httpx
import pytest
import yaml

from dockerfile_replay import Replay, parse
from serving_helpers import free_port

KEY = "ci:predict:s3cret-value-for-the-image-test"


def test_image_context_files(render):
    out = render("image", "deploy.torch=cuda", "deploy.cuda=cu126")
    torch_req = (out / "requirements" / "torch.txt").read_text()
    assert "download.pytorch.org/whl/cu126" in torch_req and "+cu126" in torch_req
    lock = (out / "requirements" / "lock.txt").read_text().splitlines()
    pinned = [line for line in lock if line and not line.startswith("#")]
    assert pinned and all("==" in line for line in pinned)
    names = {line.split("==")[0] for line in pinned}
    assert {"hydra-core", "mlflow", "uvicorn", "starlette", "setuptools"} <= names and "torch" not in names
    params = yaml.safe_load((out / "app" / "params.yaml").read_text())
    assert params["server"]["host"] == "0.0.0.0" and params["server"]["model_uri"] == "/app/models/model"
    assert (out / "app" / "models" / "model" / "model.json").is_file()
    ops = [op for op, _ in parse((out / "Dockerfile").read_text())]
    assert ops[0] == "FROM" and ops[-1] == "ENTRYPOINT" and "HEALTHCHECK" in ops and "USER" in ops


def test_pull_needs_a_tracking_server(deploy_project, deploy_plugin, monkeypatch, capsys, tmp_path):
    from aiinfra.deploy.cli import main

    monkeypatch.chdir(deploy_project)
    assert main(["image", "--out", str(tmp_path / "o"), "deploy.model=pull"]) != 0
    err = capsys.readouterr().err
    assert "aiinfra: error: deploy.model: pull needs an MLflow tracking server" in err
    assert "hint: bake the model in" in err


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_dockerfile_replayed_offline_serves_a_prediction(render, tmp_path):
    port = free_port()
    context = render("image", f"server.port={port}")
    replay = Replay(context, tmp_path / "root")
    replay.run(parse((context / "Dockerfile").read_text()))
    assert replay.base == "python:3.11-slim"
    assert replay.user == replay.useradd_uid == "10001"  # runs as the non-root user it creates
    assert replay.exposed == [port] and replay.stopsignal == "SIGTERM"
    assert len(replay.pip_steps) == 2  # torch with the lock, then the wheel
    # the wheel (not this checkout) is what the venv imports
    venv_python = replay.which("python")
    where = subprocess.run(
        [venv_python, "-c", "import aiinfra, sys; print(aiinfra.__file__)"],
        capture_output=True,
        text=True,
        env=replay.environ(),
        cwd=tmp_path,
        check=True,
    ).stdout.strip()
    assert where.startswith(str(replay.root / "opt" / "venv")), where
    # the params file names image paths; the replay root stands for the image's /
    params = replay.root / "app" / "params.yaml"
    params.write_text(params.read_text().replace(" /app/", f" {replay.root}/app/"))

    env = replay.environ(AIINFRA_API_KEYS=KEY)  # what the Secret provides in the cluster
    log = open(tmp_path / "entrypoint.out", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        replay.command(replay.entrypoint), cwd=replay.map(replay.workdir), env=env, stdout=log, stderr=log
    )
    try:
        health = replay.command(replay.healthcheck)
        deadline = time.monotonic() + 120
        while subprocess.run(health, env=env, capture_output=True).returncode != 0:
            assert proc.poll() is None, (tmp_path / "entrypoint.out").read_text()
            assert time.monotonic() < deadline, "HEALTHCHECK never passed"
            time.sleep(0.3)
        body = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3, 4, 4, 3, 2, 1]}]}
        url = f"http://127.0.0.1:{port}/v2/models/model/infer"
        assert httpx.post(url, json=body).status_code == 401  # 0.0.0.0 without a key: refused
        r = httpx.post(url, json=body, headers={"Authorization": f"Bearer {KEY.split(':')[2]}"})
        assert r.status_code == 200, r.text
        assert r.json()["outputs"][0]["shape"] == [2]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    out = (tmp_path / "entrypoint.out").read_text()
    assert "s3cret-value-for-the-image-test" not in out
