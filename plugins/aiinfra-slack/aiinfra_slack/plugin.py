"""Entry point of aiinfra-slack. Import-light: the HTTP code is imported only when a message is sent.

Three ways in, all posting to a Slack incoming webhook:

* the ``slack`` alert sink: ``monitor.alerts=[{type: slack}]`` (URL from ``url:`` or the env var);
* ``aiinfra_on_drift``: with ``AIINFRA_SLACK_WEBHOOK_URL`` set, every drift verdict is posted even
  when no sink is configured (skipped when a ``slack`` sink already posted it);
* ``aiinfra_stage_finished``: stages named in ``AIINFRA_SLACK_STAGES`` (e.g. ``train,register``)
  are announced with their outputs.
"""

import os

from aiinfra.plugins import hookimpl

AIINFRA_API = ">=1.1,<2"  # 1.1: aiinfra.monitoring.sinks.post_json; sink schemas subclass SinkConfig
URL_ENV = "AIINFRA_SLACK_WEBHOOK_URL"
STAGES_ENV = "AIINFRA_SLACK_STAGES"


@hookimpl
def aiinfra_config_searchpath():
    return "pkg://aiinfra_slack.conf"  # conf/monitor/drift_slack.yaml


@hookimpl
def aiinfra_register_components(register):
    register(
        "sink",
        "slack",
        target="aiinfra_slack.sink:slack_sink",
        schema="aiinfra_slack.schema:SlackSinkConfig",
        description=f"drift alert to a Slack incoming webhook (url, or ${URL_ENV})",
    )


def _has_slack_sink(config) -> bool:
    try:
        alerts = config["monitor"]["alerts"] or []
    except (KeyError, TypeError):
        return False
    return any(str(a.get("type")) == "slack" for a in alerts)


@hookimpl
def aiinfra_on_drift(report, config):
    if not os.environ.get(URL_ENV) or _has_slack_sink(config):
        return
    from aiinfra_slack.sink import drift_message, post

    post(os.environ[URL_ENV], drift_message(report))


@hookimpl
def aiinfra_stage_finished(stage, outputs, config):
    wanted = {s.strip() for s in os.environ.get(STAGES_ENV, "").split(",") if s.strip()}
    if stage not in wanted or not os.environ.get(URL_ENV):
        return
    from aiinfra_slack.sink import post, stage_message

    project = config.get("project", "aiinfra") if hasattr(config, "get") else "aiinfra"
    post(os.environ[URL_ENV], stage_message(stage, outputs, str(project)))
