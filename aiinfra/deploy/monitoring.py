"""Prometheus alert rules and a Grafana dashboard for the aiinfra server, from ``deploy.alerts``.

    <out>/prometheus-rules.yaml   a plain Prometheus rule file (``promtool check rules`` passes)
    <out>/prometheusrule.yaml     the same groups as a Prometheus Operator PrometheusRule
    <out>/grafana-dashboard.json  serving, batching, prediction log, drift over time

Every expression uses only metrics the server exports on /metrics (``aiinfra.serving.metrics``,
and the monitor's drift gauges that the server re-exports); tests/deploy checks both against a real
scrape and a real Prometheus.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiinfra.deploy.output import write_json, write_yaml

PREDICT_ROUTES = "/v2/models/{name}/infer|/v2/models/{name}/versions/{version}/infer|/invocations"


def rules(d: Any) -> list[dict[str, Any]]:
    a = d.alerts
    w = str(a.window)
    job = str(d.name)
    total = f'sum(rate(aiinfra_http_requests_total{{job="{job}"}}[{w}]))'

    def rule(name: str, expr: str, severity: str, summary: str, description: str) -> dict[str, Any]:
        return {
            "alert": name,
            "expr": expr,
            "for": str(a.for_),
            "labels": {"severity": severity, "service": job},
            "annotations": {"summary": summary, "description": description},
        }

    return [
        rule(
            "AiinfraP99LatencyHigh",
            f"histogram_quantile(0.99, sum by (le) (rate(aiinfra_http_request_duration_seconds_bucket"
            f'{{job="{job}",route=~"{PREDICT_ROUTES}"}}[{w}]))) > {a.p99_latency_s:g}',
            "warning",
            f"p99 prediction latency above {a.p99_latency_s:g} s",
            "p99 of /infer and /invocations is {{ $value | humanizeDuration }} over " + w + ": add replicas "
            "(the in-flight target may be too high) or look at aiinfra_inference_duration_seconds.",
        ),
        rule(
            "AiinfraErrorRatioHigh",
            f'sum(rate(aiinfra_http_requests_total{{job="{job}",status=~"5..",status!="503"}}[{w}])) / {total} '
            f"> {a.error_ratio:g}",
            "critical",
            f"more than {a.error_ratio:.2%} of requests fail with 5xx",
            "{{ $value | humanizePercentage }} of requests answer 5xx (503 excluded): see the server log.",
        ),
        rule(
            "AiinfraRejectedRatioHigh",
            f'sum(rate(aiinfra_http_requests_total{{job="{job}",status="503"}}[{w}])) / {total} > {a.rejected_ratio:g}',
            "warning",
            f"more than {a.rejected_ratio:.2%} of requests rejected with 503 (queue full)",
            "the batching queue is full (server.max_queue_rows): {{ $value | humanizePercentage }} answered 503. "
            "Scale out, or raise max_queue_rows if latency allows.",
        ),
        rule(
            "AiinfraPredictionLogWriteFailures",
            f'increase(aiinfra_prediction_log_write_errors_total{{job="{job}"}}[{w}]) > 0 or '
            f'increase(aiinfra_prediction_log_dropped_rows_total{{job="{job}"}}[{w}]) > 0',
            "critical",
            "prediction-log writes fail",
            "{{ $labels.instance }} could not write prediction-log parts (rows are retried, then dropped): "
            "the drift monitor will miss them. Check the log volume (server.log_dir).",
        ),
        rule(
            "AiinfraModelNotReady",
            f'up{{job="{job}"}} == 0 or max by (instance) (aiinfra_model_info{{job="{job}"}}) < 1',
            "critical",
            "an aiinfra replica is down or serves no model",
            "{{ $labels.instance }} does not answer /metrics or reports no loaded model.",
        ),
        rule(
            "AiinfraDriftShareHigh",
            f'max(aiinfra_drift_share{{job="{job}"}}) > {a.drift_share:g}',
            "warning",
            f"more than {a.drift_share:.0%} of the monitored columns drifted",
            "the last `aiinfra monitor` run found {{ $value | humanizePercentage }} of the columns drifted: "
            "see reports/drift/ (retraining: monitor.on_drift).",
        ),
    ]


def rule_groups(d: Any) -> dict[str, Any]:
    return {"groups": [{"name": f"aiinfra-{d.name}", "interval": str(d.alerts.evaluation_interval), "rules": rules(d)}]}


def _panel(pid: int, title: str, exprs: list[tuple[str, str]], unit: str, x: int, y: int) -> dict[str, Any]:
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend} for i, (expr, legend) in enumerate(exprs)
        ],
    }


def dashboard(d: Any) -> dict[str, Any]:
    sel = '{job="$job"}'
    latency = "aiinfra_http_request_duration_seconds_bucket"
    pred = f'{{job="$job",route=~"{PREDICT_ROUTES}"}}'
    panels = [
        (
            "Requests per second by status",
            [(f"sum by (status) (rate(aiinfra_http_requests_total{sel}[1m]))", "{{status}}")],
            "reqps",
        ),
        (
            "Prediction latency (p50, p99)",
            [
                (
                    f"histogram_quantile(0.5, sum by (le) (rate({latency}{pred}[1m])))",
                    "p50",
                ),
                (
                    f"histogram_quantile(0.99, sum by (le) (rate({latency}{pred}[1m])))",
                    "p99",
                ),
            ],
            "s",
        ),
        (
            "In-flight requests per replica (the autoscaling signal)",
            [(f"aiinfra_inflight_requests{sel}", "{{instance}}")],
            "short",
        ),
        ("Queued rows per replica", [(f"aiinfra_queue_rows{sel}", "{{instance}}")], "short"),
        (
            "Rows per forward pass (dynamic batching)",
            [
                (
                    f"sum(rate(aiinfra_batch_size_rows_sum{sel}[1m]))"
                    f" / sum(rate(aiinfra_batch_size_rows_count{sel}[1m]))",
                    "mean rows",
                )
            ],
            "short",
        ),
        (
            "Forward pass p99",
            [
                (
                    f"histogram_quantile(0.99, sum by (le) (rate(aiinfra_inference_duration_seconds_bucket{sel}[1m])))",
                    "p99",
                )
            ],
            "s",
        ),
        (
            "Rows predicted per second, by model version",
            [(f"sum by (version) (rate(aiinfra_predictions_total{sel}[1m]))", "v{{version}}")],
            "short",
        ),
        (
            "Prediction log",
            [
                (f"sum(rate(aiinfra_prediction_log_rows_total{sel}[1m]))", "rows written/s"),
                (f"sum(aiinfra_prediction_log_pending_rows{sel})", "rows pending"),
                (f"sum(increase(aiinfra_prediction_log_write_errors_total{sel}[5m]))", "write errors (5m)"),
            ],
            "short",
        ),
        (
            "Drift share over time (aiinfra monitor)",
            [
                (f"max(aiinfra_drift_share{sel})", "drift share"),
                (f"max(aiinfra_drift_share_threshold{sel})", "threshold"),
            ],
            "percentunit",
        ),
        (
            "Served model and reloads",
            [
                (f"max by (version) (aiinfra_model_info{sel})", "v{{version}}"),
                (f"sum by (result) (increase(aiinfra_model_reloads_total{sel}[5m]))", "reload {{result}}"),
            ],
            "short",
        ),
    ]
    return {
        "title": f"aiinfra: {d.name}",
        "uid": f"aiinfra-{d.name}"[:40],
        "tags": ["aiinfra"],
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus"},
                {
                    "name": "job",
                    "type": "custom",
                    "query": str(d.name),
                    "current": {"text": str(d.name), "value": str(d.name)},
                },
            ]
        },
        "panels": [
            _panel(i + 1, title, exprs, unit, x=(i % 2) * 12, y=(i // 2) * 8)
            for i, (title, exprs, unit) in enumerate(panels)
        ],
    }


def render(cfg: Any, d: Any, out: Path) -> list[Path]:
    groups = rule_groups(d)
    operator_rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": str(d.name), "namespace": str(d.namespace), "labels": {"app.kubernetes.io/name": d.name}},
        "spec": groups,
    }
    return [
        write_yaml(out / "prometheus-rules.yaml", groups),
        write_yaml(out / "prometheusrule.yaml", operator_rule),
        write_json(out / "grafana-dashboard.json", dashboard(d)),
    ]
