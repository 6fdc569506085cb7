"""``prepare.engine=ray``: the streaming prepare's per-file and per-part work as a Ray Data map.

The functions mapped are the stream engine's own (:func:`aiinfra.data.stream_file.prepare_file`,
:func:`aiinfra.data.stream_stats.part_stats`), so both engines write the same files and the same
statistics; only where they run differs. The driver merges the results in input order, one by
one as they arrive. Ray joins
``prepare.ray_address``, else ``RAY_ADDRESS``, else starts a local instance with
``prepare.ray_cpus`` CPUs. On a cluster, ``source.path`` and ``paths.prepared`` must be URLs (or a
file system every node shares): each task reads and writes where it runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
from collections.abc import Callable, Iterator
from typing import Any

from aiinfra.errors import AiinfraError

log = logging.getLogger(__name__)

#: settings the tasks need to reach the same object store (no credentials: nodes have their own)
FORWARDED_ENV = ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_REGION", "MLFLOW_S3_ENDPOINT_URL")


def _import_ray():
    try:
        import ray
    except ImportError:
        raise AiinfraError(
            "prepare.engine=ray needs Ray, which is not installed.",
            hint="pip install 'aiinfra[ray]', or prepare.engine=stream (the same files, in this process)",
        ) from None
    return ray


@contextlib.contextmanager
def ray_mapper(cfg: Any) -> Iterator[Callable]:
    """A ``mapper(fn, [args, ...]) -> iterator of results (input order)`` over Ray Data for as
    long as the block runs."""
    ray = _import_ray()
    address = cfg.prepare.ray_address or os.environ.get("RAY_ADDRESS")
    started = not ray.is_initialized()
    if started:
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        options: dict[str, Any] = {"log_to_driver": False, "runtime_env": {"env_vars": env}}
        if address:
            options["address"] = address
        else:
            options |= {"num_cpus": cfg.prepare.ray_cpus, "include_dashboard": False}
        try:
            ray.init(**options)
        except (ConnectionError, RuntimeError) as exc:
            raise AiinfraError(
                f"cannot reach the Ray cluster at {address or 'a new local instance'}: {exc}",
                hint="check prepare.ray_address (or RAY_ADDRESS), or prepare.engine=stream",
            ) from None
    log.info("ray prepare on %s (%s CPUs)", address or "a local instance", ray.cluster_resources().get("CPU"))
    # results in input order from Ray Data itself: a result done before an earlier one waits in
    # the object store, not in the driver's memory (which then holds one result at a time)
    options = ray.data.DataContext.get_current().execution_options
    before, options.preserve_order = options.preserve_order, True
    try:
        yield lambda fn, items: _map(ray, fn, items)
    finally:
        options.preserve_order = before
        if started:
            ray.shutdown()


def _map(ray: Any, fn: Callable, items: list) -> Iterator:
    """The results in input order (``preserve_order``), each as soon as it and those before it
    are done: the driver merges them one by one and holds one at a time. Each file's result
    holds at most ``prepare.sample_rows`` sample rows (:func:`~aiinfra.data.stream_file.prepare_file`
    cuts its own sample to that at the end), whatever the number of files."""
    if not items:
        return
    payload = pickle.dumps((fn, items))

    def run(row: dict[str, Any]) -> dict[str, Any]:
        function, arguments = pickle.loads(payload)
        try:
            return {"i": row["i"], "ok": True, "result": pickle.dumps(function(*arguments[row["i"]]))}
        except AiinfraError as exc:  # the user's error travels back as itself (exit 2, its message)
            return {"i": row["i"], "ok": False, "result": pickle.dumps(exc)}

    data = ray.data.from_items([{"i": i} for i in range(len(items))], override_num_blocks=len(items))
    for want, row in enumerate(data.map(run).iter_rows()):
        if row["i"] != want:  # preserve_order is off (a caller changed the DataContext)
            raise AiinfraError(
                f"Ray Data returned result {row['i']} before {want}",
                hint="leave DataContext.execution_options.preserve_order on",
            )
        value = pickle.loads(row["result"])
        if not row["ok"]:
            raise value
        del row
        yield value
