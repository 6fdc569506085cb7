"""Slack messages (Block Kit), posted with the core's retrying webhook client (`aiinfra.monitoring.sinks.post_json`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiinfra.errors import AiinfraError
from aiinfra.monitoring.sinks import post_json, redact_url
from aiinfra_slack.plugin import URL_ENV
from aiinfra_slack.schema import SlackSinkConfig


class SlackError(AiinfraError):
    """Posting to Slack failed; the message never contains the webhook URL's secret path."""


def post(
    url: str, message: dict[str, Any], *, timeout_s: float = 5.0, retries: int = 3, backoff_s: float = 0.5
) -> None:
    """POST ``message`` as JSON with the core's retrying client (connection errors, 5xx and 429,
    honouring Retry-After); raise :class:`SlackError` without the URL's secret path."""
    ok, attempts, last = post_json(
        url,
        json.dumps(message, default=str).encode(),
        headers={"User-Agent": "aiinfra-slack"},
        timeout_s=timeout_s,
        retries=retries,
        backoff_s=backoff_s,
    )
    if not ok:
        raise SlackError(
            f"posting to Slack ({redact_url(url)}) failed after {attempts} attempt(s): {last}",
            hint=f"check the webhook URL (monitor.alerts[].url or ${URL_ENV})",
        )


def drift_message(verdict: Mapping[str, Any], top_columns: int = SlackSinkConfig.top_columns) -> dict[str, Any]:
    drifted = bool(verdict.get("drift_detected"))
    cols = verdict.get("columns") or {}
    worst = sorted(
        ((name, c) for name, c in cols.items() if c.get("drifted") and c.get("score") is not None),
        key=lambda item: -abs(float(item[1]["score"]) / (float(item[1].get("threshold") or 1) or 1)),
    )[:top_columns]
    rows = verdict.get("rows") or {}
    title = ("Data drift detected" if drifted else "No data drift") + f" ({verdict.get('current', 'current data')})"
    summary = (
        f"{verdict.get('drifted_columns', len(worst))}/{verdict.get('columns_total', len(cols))} columns "
        f"drifted, share {float(verdict.get('drift_share') or 0):.2f} "
        f"(threshold {verdict.get('threshold')}); {rows.get('current', '?')} rows vs "
        f"{rows.get('reference', '?')} reference rows"
    )
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": summary}},
    ]
    if worst:
        lines = "\n".join(
            f"• `{name}`: {c.get('method')} {float(c['score']):.4g} (threshold {float(c.get('threshold') or 0):.4g})"
            for name, c in worst
        )
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "*Most drifted columns*\n" + lines}})
    paths = verdict.get("paths") or {}
    if paths.get("html") or paths.get("verdict"):
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"report: `{paths.get('html') or paths.get('verdict')}`"}],
            }
        )
    return {"text": f"{title}: {summary}", "blocks": blocks}


def stage_message(stage: str, outputs: Mapping[str, Any], project: str) -> dict[str, Any]:
    shown = {k: v for k, v in outputs.items() if isinstance(v, (int, float, str, bool)) and len(str(v)) < 200}
    lines = "\n".join(
        f"• {k}: `{v:.4g}`" if isinstance(v, float) else f"• {k}: `{v}`" for k, v in sorted(shown.items())[:20]
    )
    text = f"{project}: {stage} finished"
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*" + (f"\n{lines}" if lines else "")}}
        ],
    }


def slack_sink(verdict: Mapping[str, Any], options: SlackSinkConfig, config: Any = None) -> None:
    """The ``slack`` alert sink: ``monitor.alerts=[{type: slack, url: ...}]`` (options validated by
    :class:`~aiinfra_slack.schema.SlackSinkConfig`)."""
    import os

    url = options.url or os.environ.get(URL_ENV)
    if not url:
        raise SlackError(
            "the slack sink has no webhook URL.",
            hint=f"set ${URL_ENV}, or monitor.alerts=[{{type: slack, url: https://hooks.slack.com/...}}]",
        )
    post(
        url,
        drift_message(verdict, options.top_columns),
        timeout_s=options.timeout_s,
        retries=options.retries,
        backoff_s=options.backoff_s,
    )
