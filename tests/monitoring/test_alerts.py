"""Alerts: the aiinfra_on_drift hook, built-in sinks, a plugin's sink with its own schema, a real
webhook receiver on 127.0.0.1, and a failing sink that loses nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import drift_scenarios as scenarios
import monhelpers
from aiinfra.monitoring import sinks
from aiinfra.monitoring.drift_monitor import run_monitor, run_once
from aiinfra.monitoring.schema import WebhookSinkConfig
from aiinfra.plugins import hookimpl
from monhelpers import cfg_with


@pytest.fixture
def drifting(mon, tmp_path, aiinfra_plugin_manager):
    import pandas as pd

    mon.reference(rows=2000)
    pd.DataFrame(scenarios.make("mean_shift", 3000, seed=4)).to_parquet(tmp_path / "cur.parquet")
    return mon.cfg(f"monitor.current={tmp_path / 'cur.parquet'}", "monitor.report=false")


def _webhook(url: str, **options) -> WebhookSinkConfig:
    return WebhookSinkConfig(url=url, **options)


def test_drift_calls_plugins_hook_with_the_verdict(drifting, register_plugin):
    seen = []

    class Pager:
        @hookimpl
        def aiinfra_on_drift(self, report, config):
            seen.append((report, config))

    register_plugin(Pager(), name="pager")
    verdict = run_once(drifting)
    assert len(seen) == 1
    report, config = seen[0]
    assert report["drift_detected"] and report["drifted_columns"] == 10
    assert report["columns"]["f00"]["drifted"] and report["paths"]["verdict"].endswith("verdict.json")
    assert config.monitor.drift_share == 0.5 and config.monitor.retrain.policy == "alert"
    with pytest.raises(Exception, match="read-only|ReadonlyConfig"):
        config.monitor.drift_share = 0.1  # a hook cannot change the run's config
    hooks = [a for a in verdict["alerts"] if "hook" in a]
    assert [(a["hook"], a["ok"]) for a in hooks] == [("pager", True)]


def test_webhook_posts_the_verdict_and_file_sink_appends(drifting, receiver, tmp_path):
    r = receiver()
    cfg = cfg_with(
        drifting,
        alerts=[
            {"type": "webhook", "url": r.url, "headers": {"X-Team": "ml"}},
            {"type": "file", "path": str(tmp_path / "alerts.jsonl")},
        ],
    )
    assert isinstance(cfg.monitor.alerts[0], WebhookSinkConfig) and cfg.monitor.alerts[0].retries == 3
    verdict = run_once(cfg)
    assert [a["ok"] for a in verdict["alerts"]] == [True, True]
    assert r.bodies[0]["verdict"]["drift_share"] == verdict["drift_share"]
    assert r.bodies[0]["text"].startswith("DRIFT: 10/16 columns drifted")
    assert r.headers["X-Team"] == "ml"
    lines = (tmp_path / "alerts.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["drifted_columns"] == 10


def test_file_sink_without_a_path_writes_beside_the_report(drifting):
    verdict = run_once(cfg_with(drifting, alerts=[{"type": "file"}]))
    lines = (Path(drifting.monitor.report_dir) / "alerts.jsonl").read_text().splitlines()
    assert verdict["alerts"][0] == {"sink": "file", "index": 0, "ok": True}
    assert json.loads(lines[0])["drift_share"] == verdict["drift_share"]


def test_a_plugin_sink_gets_its_own_typed_options(drifting, register_plugin):
    class PagerPlugin:
        @hookimpl
        def aiinfra_register_components(self, register):
            register("sink", "pager", target="monhelpers:pager_sink", schema="monhelpers:PagerSinkConfig")

    register_plugin(PagerPlugin(), name="pager-plugin")
    monhelpers.PAGED.clear()
    cfg = cfg_with(drifting, alerts=[{"type": "pager", "severity": "low"}, {"type": "pager"}])
    verdict = run_once(cfg)
    assert [a["ok"] for a in verdict["alerts"] if "sink" in a] == [True, True]
    (first, options), (_, defaults) = monhelpers.PAGED
    assert isinstance(options, monhelpers.PagerSinkConfig) and options.severity == "low"
    assert defaults.severity == "high" and first["drift_detected"] is True


def test_webhook_retries_server_errors_with_the_requested_backoff(receiver):
    r = receiver(statuses=(503, 500, 200))
    sinks.webhook_sink({"drift_detected": True}, _webhook(r.url, retries=3, backoff_s=0.05))
    assert r.hits == 3 and len(r.bodies) == 1
    first, second = r.gaps()
    assert first >= 0.05 and second >= 0.1  # backoff_s, then doubled


def test_webhook_honours_retry_after_on_429(receiver):
    r = receiver(statuses=(429, 200), retry_after="0.3")
    sinks.webhook_sink({"drift_detected": True}, _webhook(r.url, retries=2, backoff_s=0.01))
    assert r.hits == 2 and r.gaps()[0] >= 0.3  # the receiver's wait, not the 0.01 s backoff


def test_webhook_gives_up_after_retries_and_on_timeouts(receiver):
    r = receiver(statuses=(500,))
    with pytest.raises(sinks.WebhookError, match="after 3 attempt"):
        sinks.webhook_sink({}, _webhook(r.url, retries=2, backoff_s=0.01))
    assert r.hits == 3
    # the receiver answers 200 only after 2 s: a 0.3 s timeout fails both attempts (had the sink
    # waited for the answer, the second attempt's 200 would have been a success)
    slow = receiver(delay_s=2.0)
    with pytest.raises(sinks.WebhookError, match=r"timed out|Timeout") as timed_out:
        sinks.webhook_sink({}, _webhook(slow.url, retries=1, backoff_s=0.01, timeout_s=0.3))
    assert "after 2 attempt(s)" in str(timed_out.value)
    r400 = receiver(statuses=(400,))
    with pytest.raises(sinks.WebhookError, match="HTTP 400") as refused:
        sinks.webhook_sink({}, _webhook(r400.url + "/hooks/T000/SECRET-TOKEN", retries=3, backoff_s=0.01))
    assert r400.hits == 1  # a refusal is not retried
    assert "SECRET-TOKEN" not in str(refused.value)  # webhook URLs carry secrets in their paths


def test_a_failing_sink_loses_nothing(drifting, receiver, tmp_path, register_plugin):
    dead = receiver(statuses=(500,))
    calls = []

    class Broken:
        @hookimpl
        def aiinfra_on_drift(self, report):
            raise RuntimeError("pager is down")

    class Fine:
        @hookimpl
        def aiinfra_on_drift(self, report):
            calls.append(report["drift_share"])

    register_plugin(Broken(), name="broken")
    register_plugin(Fine(), name="fine")
    cfg = cfg_with(
        drifting,
        alerts=[
            {"type": "webhook", "url": dead.url, "retries": 1, "backoff_s": 0.01},
            {"type": "file", "path": str(tmp_path / "alerts.jsonl")},
        ],
    )
    status = run_monitor(cfg)
    assert status == 1  # still the drift verdict, not an error
    verdict = json.loads((Path(drifting.monitor.report_dir) / "verdict.json").read_text())
    assert verdict["drift_detected"] is True
    outcomes = verdict["alerts"]
    assert outcomes[0]["sink"] == "webhook" and not outcomes[0]["ok"] and "HTTP 500" in outcomes[0]["error"]
    assert outcomes[1] == {"sink": "file", "index": 1, "ok": True}
    hooks = {a["hook"]: a for a in outcomes if "hook" in a}
    assert hooks["broken"]["ok"] is False and hooks["broken"]["error"] == "RuntimeError: pager is down"
    assert hooks["fine"]["ok"] is True and "provider" in hooks["fine"]
    assert calls == [verdict["drift_share"]]  # the broken one did not stop the other
    assert (tmp_path / "alerts.jsonl").is_file()


def test_no_alert_without_drift_unless_always(mon, tmp_path, receiver, aiinfra_plugin_manager):
    import pandas as pd

    mon.reference(rows=2000)
    pd.DataFrame(scenarios.make("no_drift", 3000, seed=4)).to_parquet(tmp_path / "cur.parquet")
    r = receiver()
    cfg = cfg_with(
        mon.cfg(f"monitor.current={tmp_path / 'cur.parquet'}", "monitor.report=false"),
        alerts=[
            {"type": "webhook", "url": r.url},
            {"type": "file", "path": str(tmp_path / "hb.jsonl"), "always": True},
        ],
    )
    verdict = run_once(cfg)
    assert not verdict["drift_detected"] and r.hits == 0
    assert json.loads((tmp_path / "hb.jsonl").read_text())["drift_detected"] is False
    cfg = cfg_with(cfg, retrain={"policy": "none", "command": ["true"], "timeout_s": 5, "export_window": False})
    assert "alerts" not in run_once(cfg)
