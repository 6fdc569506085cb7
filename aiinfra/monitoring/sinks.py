"""Built-in alert sinks (components of kind ``sink``): a log line, a JSON-lines file, a webhook.

A sink is ``sink(verdict: dict, options: Mapping, config) -> None`` and raises on failure; the
monitor writes the report and verdict *before* any sink runs and records each sink's outcome, so
a failing sink never loses a report. Standard library only (no requests): cheap to import.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Mapping

log = logging.getLogger("aiinfra.monitor.alert")


def summary_line(verdict: Mapping[str, Any]) -> str:
    """One human line: what drifted, by how much, where the report is."""
    cols = verdict.get("columns", {})
    drifted = [
        f"{name} ({c['method']} {c['score']:.4g} vs {c['threshold']:.4g})" if c.get("score") is not None
        else f"{name} ({c.get('note', 'no data')})"
        for name, c in cols.items() if c.get("drifted") and c.get("counted", True)
    ]
    state = "DRIFT" if verdict.get("drift_detected") else "no drift"
    paths = verdict.get("paths", {})
    return (
        f"{state}: {verdict.get('drifted_columns', 0)}/{verdict.get('columns_total', 0)} columns drifted "
        f"(share {verdict.get('drift_share', 0):.3f}, threshold {verdict.get('threshold')}) on "
        f"{verdict.get('rows', {}).get('current', '?')} rows of {verdict.get('current')}"
        + (f"; drifted: {', '.join(drifted)}" if drifted else "")
        + (f"; report: {paths.get('html') or paths.get('verdict')}" if paths else "")
    )


def log_sink(verdict: Mapping[str, Any], options: Mapping[str, Any], config: Any = None) -> None:
    (log.warning if verdict.get("drift_detected") else log.info)("%s", summary_line(verdict))


def file_sink(verdict: Mapping[str, Any], options: Mapping[str, Any], config: Any = None) -> None:
    """Append the verdict as one JSON line (default ``<report_dir>/alerts.jsonl``)."""
    path = options.get("path")
    if not path:
        report_dir = verdict.get("paths", {}).get("report_dir") or "."
        path = str(Path(report_dir) / "alerts.jsonl")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(verdict, default=str, sort_keys=True) + "\n")


class WebhookError(RuntimeError):
    pass


def webhook_sink(verdict: Mapping[str, Any], options: Mapping[str, Any], config: Any = None) -> None:
    """POST the verdict as JSON; retry connection errors, timeouts and 5xx/429 with backoff."""
    url = options.get("url")
    if not url:
        raise WebhookError("webhook sink needs a url (monitor.alerts[i].url=http://...)")
    timeout = float(options.get("timeout_s") or 5.0)
    retries = int(options.get("retries") if options.get("retries") is not None else 3)
    backoff = float(options.get("backoff_s") or 0.5)
    body = json.dumps({"text": summary_line(verdict), "verdict": verdict}, default=str).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "aiinfra-monitor"}
    headers.update({str(k): str(v) for k, v in dict(options.get("headers") or {}).items()})
    last = ""
    for attempt in range(retries + 1):
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                if 200 <= response.status < 300:
                    return
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
            if exc.code < 500 and exc.code != 429:  # the receiver refused it: retrying won't help
                break
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        if attempt < retries:
            time.sleep(backoff * (2**attempt))
    raise WebhookError(f"webhook {url} failed after {attempt + 1} attempt(s): {last}")
