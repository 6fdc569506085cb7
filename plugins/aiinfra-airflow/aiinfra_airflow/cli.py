"""The plugin's commands: ``aiinfra export airflow`` and ``aiinfra airflow-trigger``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from aiinfra.errors import ConfigError, choices_text, did_you_mean

#: export targets: name -> what it writes (one so far; the command is named for more)
TARGETS = {"airflow": "an Airflow 3 DAG file, one task per DVC stage"}


def export_main(argv: list[str]) -> int:
    """``aiinfra export TARGET [options]``."""
    if not argv or argv[0].startswith("-"):
        if argv and argv[0] in ("-h", "--help"):
            _export_parser().print_help()
            return 0
        raise ConfigError(
            "aiinfra export: name a target", hint=f"targets: {choices_text(TARGETS)} (aiinfra export airflow)"
        )
    target, rest = argv[0], argv[1:]
    if target not in TARGETS:
        raise ConfigError(
            f"aiinfra export: unknown target {target!r}.{did_you_mean(target, TARGETS)}",
            hint=f"targets: {choices_text(TARGETS)}",
        )
    args = _export_parser().parse_args(rest)
    from aiinfra_airflow.export import export

    project = _project(args.project)
    flags = {
        "dag_id": args.dag_id,
        "schedule": args.schedule,
        "retries": args.retries,
        "retry_delay_s": args.retry_delay_s,
        "pool": args.pool,
        "tags": args.tag,
    }
    out = Path(args.out) if args.out else None
    path, changed = export(project, flags, out=out, python=args.python, check=args.check)
    if args.check:
        if changed:
            print(f"{path} is out of date: run `aiinfra export airflow` again", file=sys.stderr)
            return 1
        print(f"{path} is current")
        return 0
    print(path)
    return 0


def _export_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aiinfra export airflow",
        description="write the project's DVC pipeline as an Airflow DAG file (settings: conf/airflow.yaml, "
        "overridden by these flags)",
    )
    p.add_argument("--out", help="directory for <dag_id>.py, or a .py file (default: <project>/dags/)")
    p.add_argument("--project", help="the project directory (default: the nearest with conf/config.yaml)")
    p.add_argument("--dag-id", help="the DAG id (default: the config's `project`)")
    p.add_argument("--schedule", help="cron ('0 3 * * *'), a preset (@daily, @hourly, ...) or none")
    p.add_argument("--retries", type=int, help="retries per task")
    p.add_argument("--retry-delay-s", type=float, help="seconds between a failed try and the next")
    p.add_argument("--pool", help="the Airflow pool of every task (it must exist in Airflow)")
    p.add_argument("--tag", action="append", help="a DAG tag (repeat; replaces the configured tags)")
    p.add_argument(
        "--python",
        help="the interpreter with aiinfra and dvc that the tasks run (default: this one, " + sys.executable + ")",
    )
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if the file differs from a new export")
    return p


def _project(arg: str | None) -> Path:
    from aiinfra.config.compose import find_project_root

    if arg is None:
        return find_project_root()
    root = Path(arg).resolve()
    if not (root / "conf" / "config.yaml").is_file():
        raise ConfigError(f"--project {arg}: no conf/config.yaml there", hint="pass an aiinfra project directory")
    return root


def trigger_main(argv: list[str]) -> int:
    """``aiinfra airflow-trigger [--mode test|trigger] [--dag-id ID] [--dag-file PATH] [--airflow PATH]``."""
    p = argparse.ArgumentParser(
        prog="aiinfra airflow-trigger",
        description="run the project's exported DAG (for monitor.retrain.command): `test` runs it now, in this "
        "process's Airflow environment, and waits; `trigger` queues a run for Airflow's scheduler",
    )
    p.add_argument("--mode", choices=("test", "trigger"), default="trigger")
    p.add_argument("--project", help="the project directory (default: the nearest with conf/config.yaml)")
    p.add_argument("--dag-id", help="default: as `aiinfra export airflow` names it")
    p.add_argument("--dag-file", help="mode test: the DAG file (default: <project>/dags/<dag_id>.py)")
    p.add_argument(
        "--airflow",
        help="Airflow's `airflow` executable (default: $AIINFRA_AIRFLOW_ENV/bin/airflow, else `airflow` on PATH)",
    )
    args = p.parse_args(argv)
    from aiinfra_airflow import trigger
    from aiinfra_airflow.export import dag_id_of

    project = _project(args.project)
    dag_id = dag_id_of(project, args.dag_id)
    airflow = trigger.find_airflow(args.airflow, os.environ)
    if args.mode == "test":
        dag_file = Path(args.dag_file) if args.dag_file else project / "dags" / f"{dag_id}.py"
        return trigger.test(airflow, dag_file, dag_id)
    return trigger.trigger(airflow, dag_id)
