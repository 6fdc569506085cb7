"""Benchmark: ``aiinfra prepare`` at scale against a plain pandas script and DuckDB (the floor).

The data (bench/scale_data.py): a mixed-type table (10 double with nulls, 3 int, 3 string
categories of cardinality 5/50/1,000, 2 bool, an id, a learnable binary target) as
hive-partitioned Parquet, 500,000 rows a file, generated once under ``--data`` and reused.

Each contender runs as its own process; measured: wall time, rows/s, peak RSS of its process
tree (children summed, sampled every 50 ms; bench/process_tree.py), exit status. A tree that
passes ``--cap-gb`` is killed and recorded as such (the pandas script may need more memory than
the machine has: that is a result, not a crash of the benchmark). Contenders:

* ``duckdb``: read, hash split 70/15/15 on ``id``, write one Parquet file per split, ``threads=2``:
  the floor (no statistics, no checks, no type inference).
* ``stream``: ``aiinfra prepare prepare.engine=stream split.method=hash split.key=id`` in a
  temporary project.
* ``pandas``: read every file into one DataFrame, hash split on ``id``, write three files.
* ``memory``: ``aiinfra prepare`` with the in-memory engine (the default), smallest size only.
* ``ray``: ``prepare.engine=ray prepare.ray_cpus=2`` (a local Ray instance), smallest size only;
  its outputs are compared with ``stream``'s (contract, preprocess, meta rows; per split the row
  count, schema and an order-independent hash of every row).
* ``stream_s3``: ``stream`` with ``source.path=s3://...`` on a moto S3 server started inside this
  process (it holds the objects in memory: smallest size only).

Targets (issue 13): stream's peak RSS under 1.5 GB at the largest size and within 20 % of the
smallest size's (memory flat in rows); stream's wall time within 2x DuckDB's; ray's outputs
identical to stream's. Results are cached per (rows, contender) in ``<data>/prepare_results.json``
(``--rerun`` measures again) and written to ``bench/results/prepare_scale.md``. Usage::

    .venv/bin/python bench/prepare_scale_bench.py                       # 2M and 20M rows, all contenders
    .venv/bin/python bench/prepare_scale_bench.py --rows 1000000 --contenders duckdb,stream
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "bench"), str(REPO)]

import process_tree  # noqa: E402 - bench/ is on the path above
import scale_data  # noqa: E402

ALL = ("duckdb", "stream", "pandas", "memory", "ray", "stream_s3")
SMALLEST_ONLY = {"memory", "ray", "stream_s3"}
SPLITS = ("train", "val", "test")
GIB = 2**30

# one hash for pandas and DuckDB alike is not needed: each splits by its own hash of id into
# 70/15/15, which is the same work (the sets differ, the sizes agree to 0.1 %)
PANDAS_SCRIPT = r"""
import sys
import numpy as np, pandas as pd
src, out = sys.argv[1], sys.argv[2]
frame = pd.read_parquet(src)  # every file, the hive column 'part' included
u = ((frame["id"].to_numpy().astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)) / 2.0**24
for name, sel in (("train", u < 0.70), ("val", (u >= 0.70) & (u < 0.85)), ("test", u >= 0.85)):
    frame[sel].to_parquet(f"{out}/{name}.parquet", index=False)
"""

DUCKDB_SCRIPT = r"""
import sys
import duckdb
src, out = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute("SET threads = 2")
con.execute("SET preserve_insertion_order = false")  # what a bulk COPY should set: less memory
con.execute(f'''
COPY (
  SELECT *, CASE WHEN hash(id) % 100 < 70 THEN 'train' WHEN hash(id) % 100 < 85 THEN 'val' ELSE 'test' END AS split
  FROM read_parquet('{src}/**/*.parquet', hive_partitioning = true)
) TO '{out}' (FORMAT parquet, PARTITION_BY (split))
''')
"""


def env_for(project: Path | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AIINFRA_", "DVC_", "AWS_", "RAY_"))}
    env.update(DO_NOT_TRACK="1", PYTHONUNBUFFERED="1", GIT_PYTHON_REFRESH="quiet", PYTHONPATH=str(REPO))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if project is not None:
        env["AIINFRA_PROJECT_DIR"] = str(project)
    env.update(extra)
    return env


def new_project(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    shutil.copytree(REPO / "conf", path / "conf")
    return path


def prepare_cmd(source: str, engine: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "aiinfra",
        "prepare",
        "source=parquet",
        f"source.path={source}",
        "source.target=target",
        f"prepare.engine={engine}",
        "split.method=hash",
        "split.key=id",
        *extra,
    ]


class MotoS3:
    """moto's S3 server in this process (as aiinfra.testing.S3Server; objects held in memory)."""

    KEY, SECRET = "bench-key-id", "bench-secret-key"

    def __init__(self) -> None:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.env = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.KEY,
            "AWS_SECRET_ACCESS_KEY": self.SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.KEY,
            aws_secret_access_key=self.SECRET,
            region_name="us-east-1",
        )

    def upload(self, local: Path, bucket: str, prefix: str) -> str:
        client = self.client()
        client.create_bucket(Bucket=bucket)
        for f in sorted(local.rglob("*.parquet")):
            client.upload_file(str(f), bucket, f"{prefix}/{f.relative_to(local).as_posix()}")
        return f"s3://{bucket}/{prefix}"

    def stop(self) -> None:
        self.server.stop()


def split_glob(out: Path, split: str) -> str:
    """The Parquet files of one split, whatever the writer's layout (a file, a directory of
    parts, DuckDB's ``split=NAME/``)."""
    patterns = (f"{split}.parquet/*.parquet", f"{split}/**/*.parquet", f"split={split}/*.parquet")
    if (out / f"{split}.parquet").is_file():
        return str(out / f"{split}.parquet")
    for pattern in patterns:
        if list(out.glob(pattern)):
            return str(out / pattern)
    return ""


def split_rows(out: Path) -> dict[str, int]:
    import duckdb

    con, rows = duckdb.connect(), {}
    for split in SPLITS:
        pattern = split_glob(out, split)
        rows[split] = con.execute(f"SELECT count(*) FROM read_parquet('{pattern}')").fetchone()[0] if pattern else 0
    return rows


def fingerprint(prepared: Path) -> dict:
    """What must agree between two engines' prepared data: per split the schema, row count and
    an order-independent hash of every row; contract.json, preprocess.json, meta.json's rows."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads = 2")
    result: dict = {}
    for split in SPLITS:
        pattern = split_glob(prepared, split)
        rel = con.sql(f"SELECT * FROM read_parquet('{pattern}')")
        names = sorted(rel.columns)
        cols = ", ".join(f'"{n}"' for n in names)
        count, digest = con.execute(
            f"SELECT count(*), sum(hash(row({cols}))::HUGEINT)::VARCHAR FROM read_parquet('{pattern}')"
        ).fetchone()
        schema = dict(zip(rel.columns, map(str, rel.types), strict=True))
        result[split] = {"schema": schema, "rows": count, "hash": digest}
    for name in ("contract.json", "preprocess.json"):
        result[name] = json.loads((prepared / name).read_text())
    result["meta.rows"] = json.loads((prepared / "meta.json").read_text()).get("rows")
    return result


def differences(a: dict, b: dict, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                out.append(f"{path}{k}: only in {'stream' if k in a else 'ray'}")
            else:
                out += differences(a[k], b[k], f"{path}{k}.")
        return out
    if isinstance(a, float) and isinstance(b, float):
        return [] if abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b)) else [f"{path[:-1]}: {a} != {b}"]
    return [] if a == b else [f"{path[:-1]}: {str(a)[:80]} != {str(b)[:80]}"]


def measure(name: str, rows: int, data: Path, work: Path, cap: int, s3: MotoS3 | None, logs: Path) -> dict:
    run_dir = work / f"{name}-{rows}"
    log_path = logs / f"{name}-{rows}.log"
    if name in ("duckdb", "pandas"):
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        script = DUCKDB_SCRIPT if name == "duckdb" else PANDAS_SCRIPT
        cmd, cwd, env, out = [sys.executable, "-c", script, str(data), str(run_dir)], run_dir, env_for(), run_dir
    else:
        project = new_project(run_dir)
        source, extra, env = str(data), [], env_for(project)
        if name == "stream_s3":
            source = s3.upload(data, "scale", f"table-{rows}")
            extra = [f"storage.endpoint_url={s3.endpoint}"]
            env.update(s3.env)
        engine = {"stream_s3": "stream"}.get(name, name)
        if engine == "ray":
            extra.append("prepare.ray_cpus=2")
        cmd, cwd, out = prepare_cmd(source, engine, *extra), project, project / "data" / "prepared"
    print(f"  {name} at {rows:,} rows ...", flush=True)
    m = process_tree.run(cmd, cwd, env, cap, log_path)
    row = {
        "rows": rows,
        "contender": name,
        "wall_s": round(m.wall_s, 2),
        "rows_per_s": round(rows / m.wall_s) if m.ok else None,
        "peak_rss_mib": round(m.peak_mib),
        "status": m.status,
        "load1": round(os.getloadavg()[0], 1),  # the machine is shared: the 1-minute load after the run
        "log": str(log_path),
    }
    if m.ok:
        row["split_rows"] = split_rows(out)
    else:
        row["error_tail"] = m.stderr_tail[-600:]
    print(f"    {row['status']}: {row['wall_s']} s, peak {row['peak_rss_mib']} MiB", flush=True)
    return row


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> str:
    mem = psutil.virtual_memory()
    return (
        f"{platform.system().lower()} {platform.machine()}, {psutil.cpu_count()} cores, "
        f"{mem.total / GIB:.0f} GiB RAM ({mem.available / GIB:.0f} GiB available at start), "
        f"python {platform.python_version()}"
    )


def report(results: dict, sizes: list[int], ray_check: dict | None, header: str) -> str:
    lines = [header, ""]
    lines.append("| rows | contender | status | wall s | rows/s | peak RSS MiB | wall / DuckDB's | load1 | commit |")
    lines.append("|---:|---|---|---:|---:|---:|---:|---:|---|")
    for rows in sizes:
        floor = results.get(f"{rows}:duckdb")
        for name in ALL:
            r = results.get(f"{rows}:{name}")
            if r is None:
                continue
            ratio = (
                f"{r['wall_s'] / floor['wall_s']:.2f}"
                if floor and floor["status"] == "ok" and r["status"] == "ok"
                else "-"
            )
            rate = f"{r['rows_per_s']:,}" if r["rows_per_s"] else "-"
            lines.append(
                f"| {rows:,} | {name} | {r['status']} | {r['wall_s']:.1f} | {rate} | {r['peak_rss_mib']:,} "
                f"| {ratio} | {r.get('load1', '-')} | {r.get('commit', '?')} |"
            )
    lines += ["", "Targets (stream engine):"]
    small, large = min(sizes), max(sizes)
    s_small, s_large = results.get(f"{small}:stream"), results.get(f"{large}:stream")
    d_large = results.get(f"{large}:duckdb")

    def ok(r):
        return r is not None and r["status"] == "ok"

    if ok(s_large):
        met = s_large["peak_rss_mib"] < 1.5 * 1024
        lines.append(
            f"- peak RSS under 1.5 GB at {large:,} rows: {s_large['peak_rss_mib']:,} MiB: {'met' if met else 'NOT met'}"
        )
    else:
        why = "not run" if s_large is None else s_large["status"]
        lines.append(f"- peak RSS under 1.5 GB at {large:,} rows: not measured (stream: {why})")
    if ok(s_small) and ok(s_large) and small != large:
        growth = s_large["peak_rss_mib"] / s_small["peak_rss_mib"] - 1
        met = growth <= 0.20
        lines.append(
            f"- memory flat in rows ({large:,} within 20 % of {small:,}): {s_large['peak_rss_mib']:,} vs "
            f"{s_small['peak_rss_mib']:,} MiB ({growth:+.0%}): {'met' if met else 'NOT met'}"
        )
    if ok(s_large) and ok(d_large):
        ratio = s_large["wall_s"] / d_large["wall_s"]
        lines.append(
            f"- throughput within 2x DuckDB's at {large:,} rows: {ratio:.2f}x its wall time: "
            f"{'met' if ratio <= 2 else 'NOT met'}"
        )
    if ray_check is not None:
        same = not ray_check["differences"]
        lines.append(
            f"- ray (2 local CPUs) output identical to stream's at {ray_check['rows']:,} rows: "
            f"{'yes' if same else 'NO: ' + '; '.join(ray_check['differences'][:5])}"
        )
    lines += [
        "",
        "Peak RSS is the sum over the process tree (Ray's raylet and workers included; pages shared between",
        "processes, such as Ray's object store, count once per process that maps them). The pandas script",
        "and DuckDB split by their own hash of id (the same 70/15/15 work, other row sets). load1: the",
        "1-minute load average right after the run (2 cores, shared with other work: above 2 means contention).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="2000000,20000000", help="comma-separated sizes")
    parser.add_argument("--contenders", default=",".join(ALL))
    parser.add_argument("--data", type=Path, default=Path("/tmp/aiinfra-scale"))
    parser.add_argument("--cap-gb", type=float, default=12.0, help="kill a contender's tree above this RSS")
    parser.add_argument("--rerun", action="store_true", help="measure again what the cache holds")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "prepare_scale.md")
    args = parser.parse_args()
    sizes = sorted(int(r) for r in args.rows.split(","))
    wanted = [c for c in args.contenders.split(",") if c]
    unknown = set(wanted) - set(ALL)
    if unknown:
        raise SystemExit(f"unknown contender(s) {sorted(unknown)}; choose from {', '.join(ALL)}")
    cap = int(min(args.cap_gb * GIB, psutil.virtual_memory().available - 3 * GIB))
    header = (
        f"# prepare at scale (bench/prepare_scale_bench.py)\n\nmachine: {machine()}; "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; commit {git_commit()}; "
        f"memory cap per contender {cap / GIB:.1f} GiB"
    )
    print(header, flush=True)
    cache_path = args.data / "prepare_results.json"
    results = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    work, logs = args.data / "runs", args.data / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    s3 = None
    ray_check = results.get("ray_check")
    try:
        for rows in sizes:
            data = scale_data.table(args.data / f"table-{rows}", rows)
            for name in wanted:
                if name in SMALLEST_ONLY and rows != sizes[0]:
                    continue
                key = f"{rows}:{name}"
                if key in results and not args.rerun:
                    continue
                if name == "stream_s3" and s3 is None:
                    s3 = MotoS3()
                results[key] = {**measure(name, rows, data, work, cap, s3, logs), "commit": git_commit()}
                if name == "ray" and results[key]["status"] == "ok":
                    stream_dir = work / f"stream-{rows}" / "data" / "prepared"
                    if stream_dir.is_dir():
                        fp_stream, fp_ray = (
                            fingerprint(stream_dir),
                            fingerprint(work / f"ray-{rows}" / "data" / "prepared"),
                        )
                        ray_check = {"rows": rows, "differences": differences(fp_stream, fp_ray)}
                        results["ray_check"] = ray_check
                cache_path.write_text(json.dumps(results, indent=1))
                if name in ("pandas", "duckdb", "memory", "stream_s3"):
                    shutil.rmtree(work / f"{name}-{rows}", ignore_errors=True)  # disk: keep what ray compares with
    finally:
        if s3 is not None:
            s3.stop()
    text = report(results, sizes, ray_check, header)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
