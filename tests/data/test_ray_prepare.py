"""``prepare.engine=ray``: the stream engine's per-file and per-part work run as Ray Data tasks
on the session's Ray instance (the ``aiinfra prepare`` subprocess joins it), writing the same
files and statistics as ``prepare.engine=stream``."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from project_helpers import run_cli
from test_stream_prepare import STREAM, mixed_frame, write_parts


def test_ray_engine_writes_what_the_stream_engine_writes(project: Path, tmp_path: Path, ray_local: str) -> None:
    source = write_parts(tmp_path / "in", [mixed_frame(1200, s) for s in range(4)])
    common = [*STREAM[1:], f"source.path={source}", "prepare.part_rows=500"]
    local = run_cli(project, "prepare", "prepare.engine=stream", *common, "paths.prepared=data/local")
    assert local.returncode == 0, local.stderr
    proc = run_cli(
        project, "prepare", "prepare.engine=ray", f"prepare.ray_address={ray_local}", *common, "paths.prepared=data/ray"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"ray prepare on {ray_local}" in proc.stderr  # it joined the session's instance
    a, b = project / "data" / "local", project / "data" / "ray"
    files_a = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file())
    assert len([f for f in files_a if f.startswith("train.parquet/")]) >= 4  # several files, rolled over at part_rows
    for name in files_a:
        if name.endswith(".parquet"):
            assert pq.read_table(a / name).equals(pq.read_table(b / name)), name
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
        else:
            assert (a / name).read_text() == (b / name).read_text(), name


def test_ray_results_come_in_input_order_when_later_tasks_finish_first(ray_local: str) -> None:
    """Ray Data keeps the input order itself (preserve_order): the driver never parks results
    that finished before an earlier one (its memory stays one result, whatever the files)."""
    import subprocess
    from types import SimpleNamespace

    import ray

    from aiinfra.data.ray_prepare import ray_mapper

    cfg = SimpleNamespace(prepare=SimpleNamespace(ray_address=ray_local, ray_cpus=4))
    items = [(["sh", "-c", f"sleep {0.4 * (3 - i)}; echo {i}"],) for i in range(4)]  # the first finishes last
    with ray_mapper(cfg) as mapped:
        assert [int(out) for out in mapped(subprocess.check_output, items)] == [0, 1, 2, 3]
    assert not ray.data.DataContext.get_current().execution_options.preserve_order  # restored afterwards
