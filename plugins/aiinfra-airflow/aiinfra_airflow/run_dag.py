"""Run one DAG run now, in this process (Airflow's ``dag.test()``), and print it as JSON.

    <airflow env>/bin/python run_dag.py DAG_FILE DAG_ID

Run by Airflow's interpreter, never aiinfra's: it imports only the standard library and Airflow.
No scheduler or API server is needed; the run and its task instances are recorded in Airflow's
metadata database (AIRFLOW_HOME), as a scheduled run's are. Exit status 0 when the run
succeeded, 1 otherwise; the last line of stdout is ``{"dag_id", "run_id", "state", "tasks"}``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time


def main(dag_file: str, dag_id: str) -> int:
    spec = importlib.util.spec_from_file_location(f"aiinfra_dag_{dag_id.replace('-', '_')}", dag_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dags = [v for v in vars(module).values() if getattr(v, "dag_id", None) == dag_id and hasattr(v, "test")]
    if not dags:
        print(f"run_dag: {dag_file} defines no DAG {dag_id!r}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    run = dags[0].test()
    seconds = round(time.perf_counter() - started, 1)
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run.run_id).all()
        tasks = {ti.task_id: str(ti.state) for ti in sorted(rows, key=lambda ti: ti.task_id)}
    state = str(run.state)
    print(json.dumps({"dag_id": dag_id, "run_id": run.run_id, "state": state, "tasks": tasks, "seconds": seconds}))
    return 0 if state == "success" else 1


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
