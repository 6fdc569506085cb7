"""The Slack sink and hooks against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import pytest

from aiinfra_slack import plugin
from aiinfra_slack.schema import SlackSinkConfig
from aiinfra_slack.sink import SlackError, drift_message, post, slack_sink

VERDICT = {
    "drift_detected": True,
    "drift_share": 0.75,
    "threshold": 0.5,
    "drifted_columns": 3,
    "columns_total": 4,
    "current": "cur.parquet",
    "rows": {"current": 300, "reference": 1400},
    "columns": {
        "f0": {"method": "wasserstein", "score": 1.8, "threshold": 0.1, "drifted": True},
        "f1": {"method": "wasserstein", "score": 0.3, "threshold": 0.1, "drifted": True},
        "f2": {"method": "wasserstein", "score": 0.01, "threshold": 0.1, "drifted": False},
    },
    "paths": {"html": "reports/drift/report.html"},
}


def test_sink_posts_block_kit_message(receiver):
    slack_sink(VERDICT, SlackSinkConfig(url=receiver.url))
    (body,) = receiver.bodies
    assert body["text"].startswith("Data drift detected (cur.parquet): 3/4 columns drifted, share 0.75")
    assert body["blocks"][0]["type"] == "header"
    worst = body["blocks"][2]["text"]["text"]
    assert worst.index("`f0`") < worst.index("`f1`") and "`f2`" not in worst
    assert "reports/drift/report.html" in body["blocks"][-1]["elements"][0]["text"]


def test_url_from_environment(receiver, monkeypatch):
    monkeypatch.setenv(plugin.URL_ENV, receiver.url)
    slack_sink(VERDICT, SlackSinkConfig())
    assert len(receiver.bodies) == 1


def test_retries_5xx_and_429_then_succeeds(receiver):
    receiver.replies = [(500, {}, b"oops"), (429, {"Retry-After": "0"}, b"rate_limited")]
    post(receiver.url, drift_message(VERDICT), backoff_s=0.01)
    assert len(receiver.bodies) == 3


def test_client_error_is_not_retried_and_secret_path_not_shown(receiver):
    receiver.replies = [(404, {}, b"no_service")]
    with pytest.raises(SlackError) as exc:
        post(receiver.url, {"text": "x"}, backoff_s=0.01)
    assert len(receiver.bodies) == 1
    message = str(exc.value)
    assert "HTTP 404 (no_service)" in message and "after 1 attempt(s)" in message
    assert "s3cretpath" not in message


def test_missing_url_is_a_clear_error(monkeypatch):
    monkeypatch.delenv(plugin.URL_ENV, raising=False)
    with pytest.raises(SlackError, match="no webhook URL") as exc:
        slack_sink(VERDICT, SlackSinkConfig())
    assert plugin.URL_ENV in exc.value.hint


def test_top_columns_limits_the_list(receiver):
    slack_sink(VERDICT, SlackSinkConfig(url=receiver.url, top_columns=1))
    worst = receiver.bodies[0]["blocks"][2]["text"]["text"]
    assert "`f0`" in worst and "`f1`" not in worst


def test_aiinfra_on_drift_posts_unless_a_slack_sink_did(receiver, monkeypatch):
    monkeypatch.setenv(plugin.URL_ENV, receiver.url)
    plugin.aiinfra_on_drift(report=VERDICT, config={"monitor": {"alerts": [{"type": "log"}]}})
    assert len(receiver.bodies) == 1
    plugin.aiinfra_on_drift(report=VERDICT, config={"monitor": {"alerts": [{"type": "slack"}]}})
    assert len(receiver.bodies) == 1  # the sink posts it; no duplicate


def test_aiinfra_stage_finished_only_for_chosen_stages(receiver, monkeypatch):
    monkeypatch.setenv(plugin.URL_ENV, receiver.url)
    monkeypatch.setenv(plugin.STAGES_ENV, "register")
    plugin.aiinfra_stage_finished(stage="train", outputs={"val_loss": 0.1}, config={"project": "p"})
    plugin.aiinfra_stage_finished(
        stage="register", outputs={"version": "3", "promoted": True, "test_accuracy": 0.97123}, config={"project": "p"}
    )
    (body,) = receiver.bodies
    assert body["text"] == "p: register finished"
    assert "• test_accuracy: `0.9712`" in body["blocks"][0]["text"]["text"]
