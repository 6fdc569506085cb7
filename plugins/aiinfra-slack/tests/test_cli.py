"""aiinfra-slack installed: a real `aiinfra monitor` run posts its drift alert to the receiver."""

from __future__ import annotations

import json

import pandas as pd


def test_listed_with_its_sink(aiinfra_project):
    rows = {
        r["distribution"]: r for r in json.loads(aiinfra_project.cli("plugins", "--json", check=True).stdout)["plugins"]
    }
    slack = rows["aiinfra-slack"]
    assert [(c["kind"], c["name"]) for c in slack["components"]] == [("sink", "slack")]
    assert {"aiinfra_on_drift", "aiinfra_stage_finished"} <= set(slack["hooks"])


def test_monitor_posts_drift_to_slack(aiinfra_project, receiver):
    env = {"AIINFRA_SLACK_WEBHOOK_URL": receiver.url, "AIINFRA_SLACK_STAGES": "prepare"}
    aiinfra_project.run("prepare", "source=synthetic", env=env, check=True)
    assert receiver.bodies[0]["text"] == "aiinfra-test: prepare finished"  # aiinfra_stage_finished
    current = pd.read_parquet(aiinfra_project.root / "data" / "prepared" / "test.parquet")
    current[["f0", "f1", "f2", "f3"]] += 3.0  # a real shift
    current.to_parquet(aiinfra_project.root / "shifted.parquet")
    proc = aiinfra_project.run(
        "monitor", "source=synthetic", "monitor=drift_slack", "monitor.current=shifted.parquet", env=env
    )
    assert proc.returncode == 0, proc.stderr
    drift = [b for b in receiver.bodies if b["text"].startswith("Data drift detected")]
    assert len(drift) == 1, receiver.bodies  # the sink posted; the hook saw the sink and stayed quiet
    assert "columns drifted" in drift[0]["text"]
    verdict = json.loads((aiinfra_project.root / "reports" / "drift" / "verdict.json").read_text())
    assert verdict["drift_detected"] is True


def test_slack_options_are_validated_by_the_sinks_schema(aiinfra_project):
    proc = aiinfra_project.run(
        "monitor", "source=synthetic", "monitor=drift_slack", "monitor.alerts=[{type:slack,top_colums:3}]"
    )
    assert proc.returncode == 2
    assert "unknown config key 'monitor.alerts[0].top_colums'" in proc.stderr and "top_columns" in proc.stderr
    proc = aiinfra_project.run("monitor", "source=synthetic", "monitor.alerts=[{type:slack,timeout_s:0}]")
    assert proc.returncode == 2 and "monitor.alerts[0].timeout_s: must be > 0" in proc.stderr
