"""Entry point of aiinfra-airflow. Import-light: no Airflow (it lives in its own environment), no dvc."""

from aiinfra.plugins import hookimpl

AIINFRA_API = ">=1.0,<2"


@hookimpl
def aiinfra_register_commands(register):
    register(
        "export",
        target="aiinfra_airflow.cli:export_main",
        help="write the pipeline for an orchestrator: export airflow [--out DIR] [--schedule ...] [--check]",
    )
    register(
        "airflow-trigger",
        target="aiinfra_airflow.cli:trigger_main",
        help="run the exported DAG: airflow-trigger [--mode test|trigger] [--dag-id ID] (monitor.retrain.command)",
    )
