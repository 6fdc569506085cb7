"""``aiinfra costs``: what each stage run, each model version and serving cost, from recorded figures.

    aiinfra costs                                  # one row per stage run in the ledger
    aiinfra costs --model                          # the champion (register.alias) of register.model_name
    aiinfra costs --model NAME --version 7         # a version: train + evaluate + register, retrains, serving
    aiinfra costs --model --alias champion --json  # machine-readable
    aiinfra costs -- costs.rates.cpu_hour=0.05     # config overrides (also without the --)

Reads ``<paths.logs>/ledger.jsonl`` and ``<paths.logs>/usage/serving-*.jsonl``
(:mod:`aiinfra.governance.costs`); the registry is asked only to resolve an alias, or a version's
run id that the ledger lacks.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from aiinfra.errors import AiinfraError
from aiinfra.governance import costs

RUN_COLUMNS = [
    ("seq", "#"),
    ("stage", "stage"),
    ("start", "start"),
    ("status", "status"),
    ("wall_s", "wall s"),
    ("cpu_s", "CPU s"),
    ("peak_mb", "peak MB"),
    ("cost_text", "cost"),
    ("ref", "run / version"),
]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aiinfra costs",
        description="What stage runs, model versions and serving cost (the run ledger and the servers' usage files, "
        "priced at the rate card costs.rates).",
    )
    p.add_argument(
        "--model",
        nargs="?",
        const="",
        default=None,
        metavar="NAME",
        help="per model version (default name: register.model_name): training, evaluation, registration, "
        "the retrains before it, and serving per 1,000 predictions",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--version", help="the model version (default: the version --alias points at)")
    which.add_argument("--alias", help="resolve the version through this registry alias (default: register.alias)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("overrides", nargs="*", help="config overrides (key=value), e.g. costs.rates.cpu_hour=0.05")
    return p


def main(argv: list[str]) -> int:
    extra: list[str] = []
    if "--" in argv:  # everything after `--` is a config override
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    args = build_parser().parse_args(argv)
    if args.model and "=" in args.model:  # `--model key=value`: no name, an override
        extra.insert(0, args.model)
        args.model = ""
    from aiinfra.runner import load_config

    cfg = load_config([*args.overrides, *extra])
    logs = Path(cfg.paths.logs)
    records = costs.read_ledger(logs / costs.LEDGER)
    rates = cfg.costs.rates
    if args.model is None:
        rows = costs.run_rows(records, rates)
        if args.json:
            print(json.dumps({"currency": rates.currency, "runs": rows}, indent=2))
            return 0
        for r in rows:
            r["cost_text"] = costs.money(r["cost"], r["currency"])
        print(costs.table(rows, RUN_COLUMNS))
        total, cpu = sum(r["cost"] for r in rows), sum(r["cpu_s"] for r in rows)
        currencies = {r["currency"] for r in rows} or {rates.currency}
        currency = currencies.pop() if len(currencies) == 1 else "(mixed currencies)"
        print(f"\n{len(rows)} stage runs, {cpu:.1f} CPU-s: {costs.money(total, currency)}")
        return 0
    report = model_report(cfg, records, args.model or cfg.register.model_name, args.version, args.alias)
    print(json.dumps(report, indent=2) if args.json else render_model(report))
    return 0


def model_report(cfg: Any, records: list[dict[str, Any]], name: str, version: str | None, alias: str | None) -> dict:
    """The cost of one version of model ``name`` (``version``, else the one ``alias`` points at)."""
    rates = cfg.costs.rates
    versions = costs.versions_in_ledger(records, name)
    if version is None:
        alias = alias or cfg.register.alias
        version = _resolve_alias(cfg, name, alias)
    version = str(version)
    if alias or version not in versions:
        # the registry knows every version's run id (also of versions registered before the ledger);
        # the ledger's own record wins where both have one
        versions = {**_registry_versions(cfg, name), **versions}
    report = costs.version_costs(records, versions, version, rates)
    report.update(model_name=name, alias=alias)
    usage = costs.read_usage_files(Path(cfg.paths.logs) / costs.USAGE_DIR)
    report["serving"] = costs.serving_costs(usage, name, version, rates)
    return report


def _client(cfg: Any):
    import mlflow  # only here: the run table needs no MLflow

    from aiinfra.tracking.mlflow_setup import tracking_uri

    uri = tracking_uri(cfg.tracking)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def _registry_versions(cfg: Any, name: str) -> dict[str, str]:
    """version -> run id of every version of ``name`` in the registry ({} when it cannot be read:
    the ledger may be enough, and :func:`costs.version_costs` names what is missing)."""
    try:
        return {str(mv.version): str(mv.run_id) for mv in _client(cfg).search_model_versions(f"name='{name}'")}
    except Exception:  # noqa: BLE001
        return {}


def _resolve_alias(cfg: Any, name: str, alias: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        return str(_client(cfg).get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        raise AiinfraError(
            f"model '{name}' has no alias '{alias}' in the registry ({str(exc).splitlines()[0]}).",
            hint="pass --version N, or register a version first (`aiinfra register`)",
        ) from None


def render_model(report: dict[str, Any]) -> str:
    cur = report["currency"]
    alias = f" ('{report['alias']}')" if report.get("alias") else ""
    lines = [f"{report['model_name']} v{report['version']}{alias}, MLflow run {report['run_id']}", ""]
    rows = [
        {
            "what": stage,
            "runs": s["runs"],
            "wall_s": s["wall_s"],
            "cpu_s": s["cpu_s"],
            "peak_mb": s["peak_mb"],
            "cost": costs.money(s["cost"], cur),
        }
        for stage, s in report["stages"].items()
    ]
    rows.append({"what": "this version", "cost": costs.money(report["cost"], cur)})
    for x in report["lineage"]:
        rows.append(
            {
                "what": f"retrain: v{x['version']} train",
                "runs": x["runs"],
                "wall_s": x["wall_s"],
                "cpu_s": x["cpu_s"],
                "peak_mb": x["peak_mb"],
                "cost": costs.money(x["cost"], cur),
            }
        )
    rows.append({"what": "total to date", "cost": costs.money(report["total_to_date"], cur)})
    columns = [("what", ""), ("runs", "runs"), ("wall_s", "wall s"), ("cpu_s", "CPU s"), ("peak_mb", "peak MB")]
    lines.append(costs.table(rows, [*columns, ("cost", "cost")]))
    s = report["serving"]
    lines.append("")
    if not s["predictions"]:
        lines.append("serving: no predictions recorded for this version (logs/usage/serving-*.jsonl)")
    else:
        lines.append(
            f"serving: {s['predictions']} predictions in {s['requests']} requests over {s['processes']} process(es), "
            f"{s['cpu_s']:.2f} CPU-s: {s['cpu_s_per_1k']:.4f} CPU-s and {costs.money(s['cost_per_1k'], cur)} "
            f"per 1,000 predictions (CPU alone {costs.money(s['cpu_cost_per_1k'], cur)})"
        )
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
