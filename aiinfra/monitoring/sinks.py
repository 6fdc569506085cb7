"""Built-in alert sinks (components of kind ``sink``): a log line, a JSON-lines file, a webhook.

A sink is ``sink(verdict: DriftReport, options, config) -> None`` and raises on failure: ``options``
is its ``monitor.alerts`` entry validated by the sink's own schema (:mod:`aiinfra.monitoring.schema`),
``config`` the run's config as a read-only DictConfig. The monitor writes the report and verdict
*before* any sink runs and records each sink's outcome, so a failing sink never loses a report.
Standard library only (no requests): cheap to import.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiinfra.monitoring.schema import FileSinkConfig, LogSinkConfig, WebhookSinkConfig
from aiinfra.monitoring.verdict import DriftReport

log = logging.getLogger("aiinfra.monitor.alert")


def summary_line(verdict: Mapping[str, Any]) -> str:
    """One human line: what drifted, by how much, where the report is."""
    cols = verdict.get("columns", {})
    drifted = [
        f"{name} ({c['method']} {c['score']:.4g} vs {c['threshold']:.4g})"
        if c.get("score") is not None
        else f"{name} ({c.get('note', 'no data')})"
        for name, c in cols.items()
        if c.get("drifted") and c.get("counted", True)
    ]
    state = "DRIFT" if verdict.get("drift_detected") else "no drift"
    breaches = verdict.get("breaches") or []
    paths = verdict.get("paths", {})
    return (
        f"{state}: {verdict.get('drifted_columns', 0)}/{verdict.get('columns_total', 0)} columns drifted "
        f"(share {verdict.get('drift_share', 0):.3f}, threshold {verdict.get('threshold')}) on "
        f"{verdict.get('rows', {}).get('current', '?')} rows of {verdict.get('current')}"
        + (f"; drifted: {', '.join(drifted)}" if drifted else "")
        + (f"; thresholds breached: {'; '.join(b['message'] for b in breaches)}" if breaches else "")
        + (f"; report: {paths.get('html') or paths.get('verdict')}" if paths else "")
    )


def log_sink(verdict: DriftReport, options: LogSinkConfig, config: Any = None) -> None:
    alert = verdict.get("alert", verdict.get("drift_detected"))
    (log.warning if alert else log.info)("%s", summary_line(verdict))


def file_sink(verdict: DriftReport, options: FileSinkConfig, config: Any = None) -> None:
    """Append the verdict as one JSON line (``path``, or ``<report_dir>/alerts.jsonl``)."""
    p = Path(options.path) if options.path else Path(verdict["paths"]["report_dir"]) / "alerts.jsonl"
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(verdict, default=str, sort_keys=True) + "\n")


class WebhookError(RuntimeError):
    pass


def redact_url(url: str) -> str:
    """``scheme://host/...``: webhook URLs often carry their secret in the path or query
    (Slack, Teams, PagerDuty), so messages and logs name only the host."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/..."


def post_json(
    url: str,
    body: bytes,
    *,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 5.0,
    retries: int = 3,
    backoff_s: float = 0.5,
) -> tuple[bool, int, str]:
    """POST a JSON body; retry connection errors, timeouts, 5xx and 429 (honouring Retry-After)
    with exponential backoff; other 4xx are final. Returns (delivered, attempts, last failure).
    Shared by the webhook sink and plugin sinks (aiinfra-slack)."""
    sent = {"Content-Type": "application/json", "User-Agent": "aiinfra"}
    sent.update({str(k): str(v) for k, v in dict(headers or {}).items()})
    last = ""
    attempt = 0
    for attempt in range(retries + 1):
        request = urllib.request.Request(url, data=body, headers=sent, method="POST")
        wait = backoff_s * (2**attempt)
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                if 200 <= response.status < 300:
                    return True, attempt + 1, ""
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            detail = exc.read(200).decode("utf-8", "replace").strip()
            last = f"HTTP {exc.code}" + (f" ({detail})" if detail else "")
            if exc.code == 429:
                # an HTTP date instead of seconds: keep the backoff
                with contextlib.suppress(ValueError):
                    wait = float(exc.headers.get("Retry-After") or wait)
            elif exc.code < 500:  # the receiver refused the message: retrying won't help
                break
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        if attempt < retries:
            time.sleep(wait)
    return False, attempt + 1, last


def webhook_sink(verdict: DriftReport, options: WebhookSinkConfig, config: Any = None) -> None:
    """POST ``{"text": <summary line>, "verdict": ...}``; retry connection errors, timeouts and 5xx/429."""
    body = json.dumps({"text": summary_line(verdict), "verdict": verdict}, default=str).encode()
    ok, attempts, last = post_json(
        options.url,
        body,
        headers={"User-Agent": "aiinfra-monitor", **options.headers},
        timeout_s=options.timeout_s,
        retries=options.retries,
        backoff_s=options.backoff_s,
    )
    if not ok:
        raise WebhookError(f"webhook {redact_url(options.url)} failed after {attempts} attempt(s): {last}")
