"""A model card per registered version, in Markdown and HTML.

Written by ``aiinfra register`` to ``<paths.reports>/model_cards/<name>-v<version>.{md,html}`` and
attached to the MLflow model version's run; ``aiinfra monitor`` history is included when present.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from aiinfra.config.typed import to_dict
from aiinfra.monitoring import history

#: the trainer settings a card shows
CARD_TRAINER_KEYS = ("accelerator", "devices", "strategy", "max_epochs", "precision")


def _drift_history(cfg: Any, limit: int = 20) -> list[dict[str, Any]]:
    """The monitor's last ``limit`` runs, as ``aiinfra monitor`` recorded them (monitoring.history)
    in its ``report_dir``; none without a monitor, or with a plugin monitor that has no report_dir."""
    report_dir = getattr(cfg.monitor, "report_dir", None)
    if report_dir is None:
        return []
    return history.load(Path(report_dir) / history.HISTORY)[-limit:]


def _production_quality(entry: dict[str, Any]) -> str:
    """Model quality in production from a drift-history entry: accuracy (classification) or
    MAE/RMSE (regression) on the rows whose labels arrived; empty without labels."""
    rows = f" on {entry.get('labelled_rows')} labelled rows"
    if entry.get("accuracy") is not None:
        return f" accuracy={entry['accuracy']:.4f}{rows}"
    if entry.get("rmse") is not None:
        return f" mae={entry['mae']:.4g} rmse={entry['rmse']:.4g}{rows}"
    return ""


def card_sections(
    cfg: Any,
    *,
    name: str,
    version: str,
    train_run: dict[str, Any],
    metrics: dict[str, Any],
    gate: dict[str, Any],
    tags: dict[str, str],
) -> list[tuple[str, list[tuple[str, str]]]]:
    model_cfg = to_dict(cfg.model)
    model_json = Path(cfg.paths.models) / "model" / "model.json"
    classes = json.loads(model_json.read_text()).get("classes", []) if model_json.is_file() else []
    trainer_cfg = to_dict(cfg.trainer)
    trainer = {k: trainer_cfg[k] for k in CARD_TRAINER_KEYS if k in trainer_cfg}
    history = _drift_history(cfg)
    drift_rows = [
        (
            str(h.get("finished") or "?"),
            f"drift={h.get('drift_detected')} share={h.get('drift_share')}"
            # model quality in production, where labels arrived (monitor.feedback)
            + _production_quality(h),
        )
        for h in history
    ] or [("-", "no monitor runs recorded yet")]
    return [
        (
            "Model",
            [
                ("name", name),
                ("version", version),
                ("component", cfg.model.type),
                ("classes", ", ".join(str(c) for c in classes) or "-"),
            ],
        ),
        (
            "Data",
            [
                ("source", cfg.source.type),
                ("dataset hash (data version)", str(train_run.get("dataset_hash"))),
                ("prepared data", cfg.paths.prepared),
            ],
        ),
        (
            "Metrics",
            # the flat metrics; metrics.json's nested "resources" section is the Cost section below
            [
                (k, f"{v:.4f}" if isinstance(v, float) else str(v))
                for k, v in sorted(metrics.items())
                if not isinstance(v, dict)
            ],
        ),
        ("Gate", [(k, f"{v:.4f}" if isinstance(v, float) else str(v)) for k, v in gate.items()]),
        (
            "Lineage",
            [
                ("MLflow run", str(train_run.get("run_id"))),
                ("model URI", str(train_run.get("model_uri"))),
                ("git commit", tags.get("aiinfra.git_commit", "-")),
                ("dvc.lock sha256", tags.get("aiinfra.dvc_lock_sha256", "-")),
            ],
        ),
        (
            "Config",
            [
                ("model", json.dumps(model_cfg, sort_keys=True)),
                ("trainer", json.dumps(trainer, default=str)),
                ("seed", str(cfg.seed)),
            ],
        ),
        ("Cost", cost_rows(cfg, train_run, metrics)),
        ("Drift history", drift_rows),
    ]


def _figure(fig: dict[str, Any], currency: str) -> str:
    gpu = f", {fig['gpu_s']:.1f} GPU-s, peak GPU {fig.get('gpu_peak_mb', 0.0):.0f} MB" if fig.get("gpu_s") else ""
    return (
        f"{fig.get('cost', 0.0):.6f} {fig.get('currency', currency)}: {fig.get('cpu_s', 0.0):.1f} CPU-s, "
        f"{fig.get('wall_s', 0.0):.1f} s wall, peak {fig.get('peak_rss_mb', 0.0):.0f} MB{gpu}"
    )


def cost_rows(cfg: Any, train_run: dict[str, Any], metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """What training and evaluating this model's run cost, as train and evaluate recorded it
    (train_run.json's ``resources``/``cost``, metrics.json's ``resources`` section), priced at the
    rate card of the run; ``aiinfra costs --model`` adds the retrains and serving."""
    from aiinfra.governance.costs import summary
    from aiinfra.governance.resources import Usage

    currency = cfg.costs.rates.currency
    section = metrics.get("resources") if isinstance(metrics.get("resources"), dict) else {}
    train = section.get("train")
    if train is None and train_run.get("resources") and train_run.get("cost"):
        train = summary(Usage.from_dict(train_run["resources"]), train_run["cost"])
    evaluate = section.get("evaluate")
    rows = [
        ("training", _figure(train, currency) if train else "not recorded"),
        ("evaluation", _figure(evaluate, currency) if evaluate else "not recorded"),
    ]
    if train and evaluate:
        rows.append(("total", f"{train.get('cost', 0.0) + evaluate.get('cost', 0.0):.6f} {currency}"))
    rates = cfg.costs.rates
    rows.append(
        (
            "rate card",
            f"{rates.cpu_hour:g} {currency}/CPU-hour, {rates.memory_gb_hour:g} {currency}/GiB-hour, "
            + ", ".join(f"{d} {p:g}" for d, p in rates.gpu_hour.items())
            + f" {currency}/GPU-hour",
        )
    )
    rows += [(f"label {k}", str(v)) for k, v in cfg.costs.labels.items()]
    rows.append(("more", "`aiinfra costs --model` (retrains to date, serving per 1,000 predictions)"))
    return rows


def render_markdown(title: str, sections) -> str:
    lines = [f"# {title}", ""]
    for heading, rows in sections:
        lines += [f"## {heading}", "", "| | |", "|---|---|"]
        lines += [f"| {k} | {str(v).replace('|', '/')} |" for k, v in rows]
        lines.append("")
    return "\n".join(lines)


def render_html(title: str, sections) -> str:
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;color:#222}"
        "table{border-collapse:collapse;width:100%;margin-bottom:1.5rem}"
        "td{border-bottom:1px solid #ddd;padding:.3rem .6rem;vertical-align:top}"
        "td:first-child{width:16rem;color:#555}h2{border-bottom:2px solid #336;padding-bottom:.2rem}</style>",
        f"</head><body><h1>{html.escape(title)}</h1>",
    ]
    for heading, rows in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2><table>")
        parts += [f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rows]
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)


def write_model_card(cfg: Any, **kwargs: Any) -> tuple[Path, Path]:
    name, version = kwargs["name"], kwargs["version"]
    title = f"Model card: {name} v{version}"
    sections = card_sections(cfg, **kwargs)
    out = Path(cfg.paths.reports) / "model_cards"
    out.mkdir(parents=True, exist_ok=True)
    md, page = out / f"{name}-v{version}.md", out / f"{name}-v{version}.html"
    md.write_text(render_markdown(title, sections))
    page.write_text(render_html(title, sections))
    return md, page
