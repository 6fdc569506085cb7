"""The whole lifecycle through DVC in a real git + DVC repository with a real MLflow store."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import numpy as np
import pytest

from project_helpers import cli_env, dvc, init_git_dvc, start_server


def ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


@pytest.fixture
def pipeline(project):
    init_git_dvc(project)
    return project


@pytest.mark.slow
def test_dvc_repro_runs_all_stages_then_only_what_changed(pipeline):
    out = dvc(pipeline, "repro")
    assert ran(out) == {"compose", "prepare", "train", "evaluate", "register", "monitor"}

    metrics = json.loads((pipeline / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.9 and metrics["test_rows"] == 86
    for plot in ("training_curve.csv", "confusion.csv", "roc.csv"):
        assert (pipeline / "plots" / plot).stat().st_size > 0
    registration = json.loads((pipeline / "models" / "registration.json").read_text())
    assert registration["passed"] and registration["alias_moved"] and registration["version"] == "1"
    assert (pipeline / registration["model_card_html"]).is_file()
    verdict = json.loads((pipeline / "reports" / "drift" / "verdict.json").read_text())
    assert "drift_detected" in verdict

    # lineage in MLflow: the run knows its data version, config and commit; the alias points at it
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "import mlflow, json; c = mlflow.MlflowClient('sqlite:///mlflow.db');"
                "mv = c.get_model_version_by_alias('aiinfra-demo', 'champion'); r = c.get_run(mv.run_id);"
                "print(json.dumps({'tags': r.data.tags, 'params': r.data.params, 'metrics': r.data.metrics,"
                " 'artifacts': [a.path for a in c.list_artifacts(r.info.run_id)]}))"
            ),
        ],
        cwd=pipeline,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    info = json.loads(check.stdout.splitlines()[-1])
    meta = json.loads((pipeline / "data" / "prepared" / "meta.json").read_text())
    assert info["tags"]["aiinfra.dataset_hash"] == meta["dataset_hash"]
    assert len(info["tags"]["aiinfra.git_commit"]) >= 40
    assert info["params"]["model.hidden"] == "64" and "test_accuracy" in info["metrics"]
    assert {"config", "data"} <= set(info["artifacts"])

    assert "Data and pipelines are up to date" in dvc(pipeline, "repro")
    _served_equals_offline(pipeline)

    mlp = pipeline / "conf" / "model" / "mlp.yaml"
    mlp.write_text(mlp.read_text().replace("hidden: 64", "hidden: 32"))
    assert ran(dvc(pipeline, "repro")) == {"compose", "train", "evaluate", "register"}

    subprocess.run(["git", "add", "-A"], cwd=pipeline, check=True, env=cli_env())
    subprocess.run(["git", "commit", "-qm", "hidden 32"], cwd=pipeline, check=True, env=cli_env())
    out = dvc(pipeline, "exp", "run", "-S", "model.hidden=16")
    assert "prepare" not in ran(out) and "train" in ran(out)
    shown = json.loads(dvc(pipeline, "exp", "show", "--json"))
    hiddens = {
        exp["data"]["params"]["params.yaml"]["data"]["model"]["hidden"]
        for rev in shown
        for exp in [rev, *[e for x in (rev.get("experiments") or []) for e in x["revs"]]]
        if exp.get("data", {}).get("params")
    }
    assert {16, 32} <= hiddens


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def _served_equals_offline(project) -> None:
    """`aiinfra serve` of the champion answers exactly what the model predicts offline."""
    from aiinfra.data.prepared import PreparedData
    from aiinfra.models.model_dir import Predictor

    data = PreparedData.open(project / "data" / "prepared")
    x, _ = data.arrays("test")
    offline = Predictor.load(project / "models" / "model").predict_proba(x)
    server, base = start_server(project)
    try:
        whole = _post(f"{base}/invocations", {"dataframe_split": {"columns": data.features, "data": x.tolist()}})
        np.testing.assert_allclose(np.asarray(whole["probabilities"]), offline, atol=1e-5)
        for i in range(0, len(x), 17):  # single-row requests take the same path through the batcher
            one = _post(f"{base}/invocations", {"inputs": [x[i].tolist()]})
            np.testing.assert_allclose(np.asarray(one["probabilities"][0]), offline[i], atol=1e-5)
            assert one["predictions"][0] == data.classes[int(offline[i].argmax())]
        # one scrape covers serving and the monitor's latest verdict (reports/drift/drift.prom)
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as resp:
            families = {f.name: f for f in text_string_to_metric_families(resp.read().decode())}
        verdict = json.loads((project / "reports" / "drift" / "verdict.json").read_text())
        share = families["aiinfra_drift_share"].samples[0].value
        assert share == pytest.approx(verdict["drift_share"])
        assert families["aiinfra_model_info"].samples[0].labels["version"] == "1"
    finally:
        server.terminate()
        server.wait(timeout=60)
