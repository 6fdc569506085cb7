"""Every enumerated option and every rule of ``monitor.*`` is decided in config validation: the
error names the full key, and neither torch nor Evidently (nor pandas) has been imported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from aiinfra.errors import ConfigError
from aiinfra.monitoring import stats
from aiinfra.monitoring.schema import Method, ReportOn, RetrainPolicy, WebhookSinkConfig
from monhelpers import REPO, env_for, validate_monitor

WEBHOOK = {"type": "webhook", "url": "http://127.0.0.1:9/hook"}

#: (monitor keys to set, what the error says)
RULES = [
    ({"method": "chisqure"}, "'monitor.method': Invalid value 'chisqure', expected one of [auto, ks"),
    ({"per_column_method": {"f00": "kss"}}, "'monitor.per_column_method.f00': Invalid value 'kss'"),
    ({"report_on": "sometimes"}, "'monitor.report_on': Invalid value 'sometimes', expected one of [always, drift]"),
    ({"retrain.policy": "retrian"}, "'monitor.retrain.policy': Invalid value 'retrian', expected one of [none, alert"),
    ({"drift_share": 0}, "monitor.drift_share: must be in (0, 1], got 0"),
    ({"drift_share": 1.5}, "monitor.drift_share: must be in (0, 1], got 1.5"),
    ({"threshold": -0.1}, "monitor.threshold: must be >= 0, got -0.1"),
    ({"per_column_threshold": {"f00": -1}}, "monitor.per_column_threshold.f00: must be >= 0, got -1"),
    ({"report_sample_rows": -1}, "monitor.report_sample_rows: must be >= 0"),
    ({"watch_interval_s": -5}, "monitor.watch_interval_s: must be >= 0"),
    ({"watch_max_runs": -1}, "monitor.watch_max_runs: must be >= 0"),
    ({"threads": -2}, "monitor.threads: must be >= 0"),
    ({"retrain.timeout_s": 0}, "monitor.retrain.timeout_s: must be > 0"),
    ({"retrain.command": []}, "monitor.retrain.command: must be a non-empty command line"),
    ({"retrain.command": ["dvc", ""]}, "monitor.retrain.command: must be a non-empty command line"),
    ({"window.last_hours": 0}, "monitor.window.last_hours: must be > 0"),
    ({"window.last_rows": 0}, "monitor.window.last_rows: must be >= 1"),
    (
        {"window.last_hours": 1, "window.last_rows": 5},
        "monitor.window.last_rows: cannot be combined with window.last_hours",
    ),
    (
        {"window.end": "2026-11-28T12:00", "window.last_rows": 5},
        "monitor.window.last_rows: cannot be combined with window.end",
    ),
    ({"window.start": "yesterday"}, "monitor.window.start: 'yesterday' is not an ISO-8601 time"),
    ({"window.end": "2026-13-01"}, "monitor.window.end: '2026-13-01' is not an ISO-8601 time"),
    (
        {"window.start": "2026-11-28T12:00", "window.end": "2026-11-28T11:00Z"},
        "monitor.window.end: must be after start",
    ),
    (
        {"current": "new.parquet", "window.last_hours": 24},
        "monitor.window: applies to the prediction log, but monitor.current",
    ),
    ({"alerts": [{"type": "log"}, {"type": "webhook"}]}, "monitor.alerts[1].url: is required"),
    ({"alerts": [{**WEBHOOK, "url": "ftp://x"}]}, "monitor.alerts[0].url: must be an http:// or https:// URL"),
    ({"alerts": [{**WEBHOOK, "timeout_s": 0}]}, "monitor.alerts[0].timeout_s: must be > 0"),
    ({"alerts": [{**WEBHOOK, "retries": -1}]}, "monitor.alerts[0].retries: must be >= 0"),
    ({"alerts": [{**WEBHOOK, "retires": 2}]}, "unknown config key 'monitor.alerts[0].retires'. Did you mean 'retries'"),
    ({"alerts": [{"type": "file", "url": "http://x"}]}, "unknown config key 'monitor.alerts[0].url'"),
    ({"alerts": [{"type": "log", "path": "a.jsonl"}]}, "unknown config key 'monitor.alerts[0].path'"),
    ({"alerts": [{"type": "pagr"}]}, "monitor.alerts[0].type: unknown sink 'pagr'"),
    ({"datetime": "days"}, "'monitor.datetime': Invalid value 'days', expected one of [epoch, skip]"),
    ({"text": "tokens"}, "'monitor.text': Invalid value 'tokens', expected one of [length, skip]"),
    ({"max_unseen_share": 1.5}, "monitor.max_unseen_share: must be in [0, 1] (a share), got 1.5"),
    ({"max_null_increase": -0.1}, "monitor.max_null_increase: must be in [0, 1] (a share), got -0.1"),
    ({"min_accuracy": 2}, "monitor.min_accuracy: must be in [0, 1] (a share), got 2"),
    ({"max_mae": -1}, "monitor.max_mae: must be >= 0, got -1"),
    ({"max_rmse": -0.5}, "monitor.max_rmse: must be >= 0, got -0.5"),
    ({"min_labelled_rows": 0}, "monitor.min_labelled_rows: must be >= 1, got 0"),
]


@pytest.mark.parametrize("updates,words", RULES, ids=[str(u) for u, _ in RULES])
def test_a_broken_rule_fails_validation_naming_the_key(updates, words, aiinfra_plugin_manager):
    with pytest.raises(ConfigError) as info:
        validate_monitor(REPO / "conf", updates)
    assert words in str(info.value)


def test_every_rule_fails_before_torch_or_evidently_is_imported(tmp_path):
    code = (
        "import json, sys\n"
        "from aiinfra.errors import ConfigError\n"
        "from monhelpers import validate_monitor, REPO\n"
        "errors = []\n"
        "for updates in json.loads(sys.argv[1]):\n"
        "    try:\n"
        "        validate_monitor(REPO / 'conf', updates)\n"
        "        errors.append(None)\n"
        "    except ConfigError as exc:\n"
        "        errors.append(str(exc))\n"
        "heavy = ('torch', 'lightning', 'evidently', 'pandas', 'mlflow', 'scipy')\n"
        "heavy = sorted(m for m in heavy if m in sys.modules)\n"
        "print(json.dumps({'errors': errors, 'heavy': heavy}))\n"
    )
    env = env_for(tmp_path, AIINFRA_LOAD_PLUGINS="", PYTHONPATH=str(REPO / "tests" / "monitoring"))
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps([u for u, _ in RULES])],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    for (updates, words), error in zip(RULES, result["errors"], strict=True):
        assert error is not None and words in error, (updates, error)


@pytest.mark.parametrize("method", list(Method))
def test_every_method_is_accepted_for_the_default_and_per_column(method, aiinfra_plugin_manager):
    cfg = validate_monitor(REPO / "conf", {"method": str(method), "per_column_method": {"f00": str(method)}})
    assert cfg.monitor.method == method and cfg.monitor.per_column_method["f00"] is method


def test_the_methods_are_the_engines_tests():
    assert {str(m) for m in Method} == {"auto", *stats.TESTS}


@pytest.mark.parametrize("value", list(ReportOn))
def test_every_report_on_is_accepted(value, aiinfra_plugin_manager):
    assert validate_monitor(REPO / "conf", {"report_on": str(value)}).monitor.report_on is value


@pytest.mark.parametrize("policy", list(RetrainPolicy))
def test_every_retrain_policy_is_accepted(policy, aiinfra_plugin_manager):
    assert validate_monitor(REPO / "conf", {"retrain.policy": str(policy)}).monitor.retrain.policy is policy


def test_valid_windows_and_sinks_pass(aiinfra_plugin_manager):
    cfg = validate_monitor(
        REPO / "conf",
        {
            "window.start": "2026-11-28T10:00",
            "window.end": "2026-11-28T11:00Z",
            "alerts": [{**WEBHOOK, "headers": {"X-Team": "ml"}}, {"type": "file"}],
        },
    )
    webhook, file = cfg.monitor.alerts
    assert isinstance(webhook, WebhookSinkConfig) and webhook.headers == {"X-Team": "ml"} and webhook.retries == 3
    assert file.path is None and file.always is False
    assert validate_monitor(REPO / "conf", {"window.last_rows": 1}).monitor.window.last_rows == 1


def test_a_plugin_sink_with_its_own_option_validates(register_plugin):
    from aiinfra.plugins import hookimpl

    class PagerPlugin:
        @hookimpl
        def aiinfra_register_components(self, register):
            register("sink", "pager", target="monhelpers:pager_sink", schema="monhelpers:PagerSinkConfig")

    register_plugin(PagerPlugin(), name="pager-plugin")
    cfg = validate_monitor(REPO / "conf", {"alerts": [{"type": "pager", "severity": "low", "always": True}]})
    assert (cfg.monitor.alerts[0].severity, cfg.monitor.alerts[0].always) == ("low", True)
    with pytest.raises(ConfigError, match=r"unknown config key 'monitor.alerts\[0\].severty'. Did you mean 'severity'"):
        validate_monitor(REPO / "conf", {"alerts": [{"type": "pager", "severty": "low"}]})
    # the webhook's options are not the pager's
    with pytest.raises(ConfigError, match=r"unknown config key 'monitor.alerts\[0\].url'"):
        validate_monitor(REPO / "conf", {"alerts": [{"type": "pager", "url": "http://x"}]})


def test_a_plugin_sink_on_the_old_union_schema_still_validates_with_a_warning(register_plugin):
    from aiinfra.config.validate import AiinfraDeprecationWarning
    from aiinfra.plugins import hookimpl

    class OldPlugin:
        @hookimpl
        def aiinfra_register_components(self, register):
            register("sink", "old", target="monhelpers:pager_sink", schema="aiinfra.monitoring.schema:AlertConfig")

    register_plugin(OldPlugin(), name="old-plugin")
    with pytest.warns(AiinfraDeprecationWarning, match="register the sink with its own subclass"):
        cfg = validate_monitor(REPO / "conf", {"alerts": [{"type": "old", "url": "http://x", "retries": 1}]})
    assert (cfg.monitor.alerts[0].url, cfg.monitor.alerts[0].retries) == ("http://x", 1)
