"""``prepare.engine=stream``: partitioned Parquet written by record batches, through the real CLI.

Re-runs give the same bytes; a row keeps its split when a file is added; statistics are fitted
on train rows only; the contract agrees with the memory engine's; a file with another schema or a
damaged one is exit 2 naming it with no ``meta.json`` left; train and evaluate read the layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from aiinfra.data.prepared import PreparedData
from project_helpers import run_cli

STREAM = ("prepare.engine=stream", "source=parquet", "source.target=label")


def mixed_frame(n: int, seed: int) -> pd.DataFrame:
    """Numeric, categorical, boolean columns with gaps, a binary label and a row id (which the
    contract drops as an identifier; the parts keep it, so tests can follow rows)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "row_id": np.arange(n) + seed * 1_000_000,
            "width": rng.normal(10, 3, n),
            "count": rng.integers(0, 40, n).astype(float),
            "color": rng.choice(["red", "green", "blue", "grey"], n),
            "flag": rng.random(n) < 0.3,
            "label": rng.integers(0, 2, n),
        }
    )
    frame.loc[rng.random(n) < 0.1, "width"] = np.nan
    frame.loc[rng.random(n) < 0.05, "color"] = None
    return frame


def write_parts(root: Path, frames: list[pd.DataFrame]) -> Path:
    for i, frame in enumerate(frames):
        part = root / f"day={i % 2}"
        part.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(part / f"f{i}.parquet", index=False)
    return root


def prepare(project: Path, source: Path, out: str, *extra: str, **env: str):
    return run_cli(project, "prepare", *STREAM, f"source.path={source}", f"paths.prepared={out}", *extra, **env)


def part_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.parquet")) if p.is_file()}


def test_rerun_same_bytes_and_split_stable_under_an_added_file(project: Path, tmp_path: Path) -> None:
    source = write_parts(tmp_path / "in", [mixed_frame(900, s) for s in range(3)])
    assert prepare(project, source, "data/a").returncode == 0
    assert prepare(project, source, "data/b").returncode == 0
    a, b = project / "data" / "a", project / "data" / "b"
    assert part_bytes(a) == part_bytes(b)
    for name in ("meta.json", "contract.json", "preprocess.json", "profile.json"):
        assert (a / name).read_text() == (b / name).read_text()
    meta = json.loads((a / "meta.json").read_text())
    assert meta["layout"] == "partitioned" and sum(meta["rows"][s] for s in ("train", "val", "test")) == 2700
    assert 0.1 < meta["rows"]["test"] / 2700 < 0.2  # split.test=0.15 by hash
    # the dataset hash is one of the values: the parts read back (any writer's bytes) give it again
    from aiinfra.data.stream_file import dataset_hash, part_hash

    parts = [
        (s, rel, pq.read_metadata(a / rel).num_rows, part_hash(pq.read_table(a / rel)))
        for s in meta["parts"]
        for rel in meta["parts"][s]
    ]
    assert dataset_hash(parts) == meta["dataset_hash"]

    def splits(root: Path) -> dict[int, str]:
        data = PreparedData.open(root)
        return {int(r): split for split in ("train", "val", "test") for r in data.read(split)["row_id"]}

    before = splits(a)
    write_parts(tmp_path / "more", [mixed_frame(900, s) for s in range(4)])
    (tmp_path / "in" / "day=1" / "f3.parquet").write_bytes((tmp_path / "more" / "day=1" / "f3.parquet").read_bytes())
    assert prepare(project, source, "data/a").returncode == 0
    after = splits(a)
    assert len(after) == len(before) + 900
    assert all(after[row] == split for row, split in before.items())
    assert "row_id" in PreparedData.open(a).contract.dropped


def test_statistics_from_train_rows_only(project: Path, tmp_path: Path) -> None:
    frame = mixed_frame(3000, 7)
    source = write_parts(tmp_path / "in", [frame])
    assert prepare(project, source, "data/p").returncode == 0
    data = PreparedData.open(project / "data" / "p")
    test = data.read("test")
    # a value only test rows hold: mark some test rows' colour, prepare again from that data
    frame.loc[frame["row_id"].isin(test["row_id"].head(20)), "color"] = "violet"
    assert (frame["color"] == "violet").sum() == 20
    write_parts(tmp_path / "in", [frame])
    assert prepare(project, source, "data/p", "audit.data_quality=off").returncode == 0
    data = PreparedData.open(project / "data" / "p")
    assert "violet" in set(data.read("test")["color"])
    assert "violet" not in set(data.read("train")["color"])
    color = next(c for c in data.transform.columns if c.name == "color")
    assert "violet" not in color.categories and "violet" not in data.contract.column("color").categories
    train = data.read("train")
    spec = data.contract.column("color")
    assert spec.categories == {k: int(v) for k, v in train["color"].value_counts().items()}
    width = next(c for c in data.transform.columns if c.name == "width")
    assert width.indicator and data.contract.column("width").min == train["width"].min()
    assert data.contract.column("width").null_share == round(train["width"].isna().mean(), 6)


def test_stream_and_memory_agree_on_a_bundled_table(project: Path, tmp_path: Path) -> None:
    assert run_cli(project, "prepare", "experiment=penguins", "paths.prepared=data/mem").returncode == 0
    mem = PreparedData.open(project / "data" / "mem")
    table = pd.concat([mem.read(s) for s in ("train", "val", "test")], ignore_index=True)
    table.to_parquet(tmp_path / "penguins.parquet", index=False)
    proc = run_cli(
        project,
        "prepare",
        "experiment=penguins",
        "prepare.engine=stream",
        "source=parquet",
        f"source.path={tmp_path / 'penguins.parquet'}",
        f"source.target={mem.target}",
        "paths.prepared=data/st",
    )
    assert proc.returncode == 0, proc.stderr
    st = PreparedData.open(project / "data" / "st")
    assert st.task == mem.task and st.classes == mem.classes
    assert {c.name: c.type for c in st.contract.columns} == {c.name: c.type for c in mem.contract.columns}
    assert [c.name for c in st.transform.columns] == [c.name for c in mem.transform.columns]
    for s, m in zip(st.contract.columns, mem.contract.columns, strict=True):
        assert abs(s.null_share - m.null_share) < 0.05, s.name
        if s.min is not None:
            assert abs(s.min - m.min) <= 0.2 * (m.max - m.min) and abs(s.max - m.max) <= 0.2 * (m.max - m.min)
        if s.categories:
            assert set(s.categories) == set(m.categories), s.name
    assert sum(st.meta["rows"][s] for s in ("train", "val", "test")) == len(table)


def test_bad_partitions_exit_2_naming_the_file(project: Path, tmp_path: Path) -> None:
    source = write_parts(tmp_path / "in", [mixed_frame(300, s) for s in range(2)])
    other = mixed_frame(300, 9).assign(count=lambda f: f["count"].astype(str))
    other.to_parquet(source / "day=1" / "f9.parquet", index=False)
    proc = prepare(project, source, "data/bad")
    assert proc.returncode == 2 and "f9.parquet" in proc.stderr and "count" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (project / "data" / "bad" / "meta.json").exists()
    (source / "day=1" / "f9.parquet").write_bytes(b"PAR1 this is not a parquet file")
    proc = prepare(project, source, "data/bad")
    assert proc.returncode == 2 and "f9.parquet" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (project / "data" / "bad").exists()
    # a stale complete output is not left looking current after a failure either
    (source / "day=1" / "f9.parquet").unlink()
    assert prepare(project, source, "data/bad").returncode == 0
    (source / "day=1" / "f9.parquet").write_bytes(b"garbage")
    assert prepare(project, source, "data/bad").returncode == 2
    assert (project / "data" / "bad" / "meta.json").is_file()  # the previous complete run is kept whole
    assert not list((project / "data").glob(".bad.tmp-*"))


def test_train_stream_loader_and_evaluate_on_partitioned_layout(project: Path, tmp_path: Path) -> None:
    source = write_parts(tmp_path / "in", [mixed_frame(700, s) for s in range(3)])
    assert prepare(project, source, "data/prepared", "prepare.part_rows=300").returncode == 0
    data = PreparedData.open(project / "data" / "prepared")
    parts = data.files("train")
    assert len(parts) >= 3 and sum(pq.ParquetFile(p).metadata.num_rows for p in parts) == data.meta["rows"]["train"]
    train = [*STREAM, f"source.path={source}", "data.loader=stream", "trainer.max_epochs=2"]
    proc = run_cli(project, "train", *train[1:])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((project / "models" / "train_run.json").read_text())["loader"] == "stream"
    proc = run_cli(project, "evaluate", *STREAM[1:], f"source.path={source}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((project / "metrics.json").read_text())
    assert any("acc" in k for k in json.dumps(metrics).split('"'))


def test_pass_one_statistics_equal_a_reread_of_the_written_parts(tmp_path: Path) -> None:
    """Pass 1 gathers each split's statistics while it writes; for a column whose inferred type
    is its stored type they must be what reading the written part back gives (pass 2)."""
    import pyarrow as pa

    from aiinfra.data.stream_stats import needs_pass2, part_stats, stored_kinds, table_stats

    frame = mixed_frame(5000, 3)
    frame["day"] = pd.Series(pd.date_range("2024-01-01", periods=5000, freq="h").strftime("%Y-%m-%d"))
    table = pa.Table.from_pandas(frame, preserve_index=False)
    kinds = stored_kinds(table.schema)
    assert kinds["day"] == "categorical" and kinds["width"] == "numeric" and kinds["flag"] == "boolean"
    inferred = kinds | {"day": "datetime", "row_id": "numeric"}
    assert needs_pass2(inferred, kinds) == {"day": "datetime"}  # stored as strings: read again
    assert needs_pass2(kinds | {"color": "text"}, kinds) == {}  # a string column as text: the same counts
    pq.write_table(table, tmp_path / "p.parquet")
    first: dict = {}
    for batch in table.to_batches(max_chunksize=700):  # pass 1 sees batches, pass 2 the file
        table_stats(first, pa.Table.from_batches([batch]), kinds)
    again = part_stats(str(tmp_path / "p.parquet"), kinds, 1000)
    for name in kinds:
        a, b = first[name], again[name]
        assert {k: a[k] for k in ("rows", "nulls", "raw_nulls", "min", "max", "raw_min", "raw_max")} == {
            k: b[k] for k in ("rows", "nulls", "raw_nulls", "min", "max", "raw_min", "raw_max")
        }, name
        for key in ("sum", "sumsq"):  # sums of squares too: variances are exact and mergeable
            assert abs(a[key] - b[key]) <= 1e-9 * max(1.0, abs(b[key])), name
        assert np.array_equal(np.asarray(list(a["counts"])), np.asarray(list(b["counts"]))), name
        assert a["raw_counts"] == b["raw_counts"], name
    width = frame["width"].dropna()
    assert abs(first["width"]["sumsq"] - float((width**2).sum())) <= 1e-9 * float((width**2).sum())


def test_local_map_keeps_input_order_with_threads() -> None:
    import time

    from aiinfra.data.streaming import local_map

    def slow(i: int) -> int:
        time.sleep(0.02 * (5 - i))  # the first items finish last
        return i

    assert list(local_map(slow, [(i,) for i in range(6)], workers=3)) == list(range(6))


def test_dates_and_numbers_written_as_strings_get_exact_statistics(project: Path, tmp_path: Path) -> None:
    """Columns whose inferred type is not their stored type (pass 2): exact over the train rows."""
    frames = []
    for seed in range(3):
        frame = mixed_frame(1500, seed)
        rng = np.random.default_rng(seed)
        days = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 700, len(frame)), unit="D")
        frame["day"] = days.strftime("%Y-%m-%d")
        frame["size"] = [f"{v:.2f}" for v in rng.normal(50, 5, len(frame))]
        frame.loc[rng.random(len(frame)) < 0.1, "size"] = ""
        frames.append(frame)
    source = write_parts(tmp_path / "in", frames)
    proc = prepare(project, source, "data/p", "prepare.part_rows=700")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pass 2" in proc.stderr and "day" in proc.stderr
    data = PreparedData.open(project / "data" / "p")
    train = data.read("train")
    day, size = data.contract.column("day"), data.contract.column("size")
    assert str(day.type) == "datetime" and str(size.type) == "numeric"
    seconds = pd.to_datetime(train["day"]).astype("int64") / 1e9
    assert (day.min, day.max) == (float(seconds.min()), float(seconds.max()))
    sizes = pd.to_numeric(train["size"].replace("", None))
    assert (size.min, size.max) == (float(sizes.min()), float(sizes.max()))
    assert size.null_share == round(float(sizes.isna().mean()), 6) and size.null_share > 0
    width = data.contract.column("width")  # a pass-1 column beside them
    assert width.null_share == round(float(train["width"].isna().mean()), 6)


def test_sample_merged_lazily_is_the_bottom_k_of_every_row() -> None:
    """Files' samples are merged unsorted and cut only past twice the size: the final sample is
    still exactly the rows with the smallest sample hash, in its order."""
    import pyarrow as pa

    from aiinfra.data.stream_file import H2, FilePartial, bottom_k

    rng = np.random.default_rng(5)
    chunks = [
        pa.table({"x": rng.normal(size=n), H2: rng.integers(0, 2**63, n, dtype=np.uint64)})
        for n in (50, 400, 7, 300, 0, 120)
    ]
    total = FilePartial()
    for chunk in chunks:
        total.merge(FilePartial(sample=chunk), 100)
    assert total.sample_limit is not None and total.sample.num_rows <= 2 * 100  # cut past twice k
    assert bottom_k([total.sample], 100).equals(bottom_k(chunks, 100))


def test_dvc_repro_runs_the_whole_pipeline_on_the_stream_engine(project: Path) -> None:
    """The stream engine's directories are named like the flat layout's files, so dvc.yaml's
    dependencies (data/prepared/train.parquet ...) and the monitor stage's current data need no
    change: `dvc repro` runs every stage on partitioned data."""
    from project_helpers import dvc, init_git_dvc

    frames = [mixed_frame(1500, s) for s in range(2)]
    for frame in frames:  # learnable: the gate has something to pass
        frame["label"] = (frame["width"].fillna(10) + (frame["color"] == "red") * 3 > 11).astype(int)
    write_parts(project / "data" / "raw" / "events", frames)
    config = project / "conf" / "config.yaml"
    text = config.read_text()
    config.write_text(
        text.replace("- source: breast_cancer", "- source: parquet").replace("engine: memory", "engine: stream")
    )
    parquet = project / "conf" / "source" / "parquet.yaml"
    parquet.write_text(
        parquet.read_text()
        .replace("path: data/raw/data.parquet", "path: data/raw/events")
        .replace("target: target", "target: label")
    )
    init_git_dvc(project)
    out = dvc(project, "repro")
    stages = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage '")}
    assert stages == {"compose", "prepare", "train", "evaluate", "register", "monitor"}, out[-3000:]
    data = PreparedData.open(project / "data" / "prepared")
    assert data.partitioned and (project / "data" / "prepared" / "train.parquet").is_dir()
    assert len(data.files("train")) >= 2  # one part per input file at least
    metrics = json.loads((project / "metrics.json").read_text())
    assert metrics["test_rows"] == data.meta["rows"]["test"] and metrics["test_accuracy"] > 0.8
    registration = json.loads((project / "models" / "registration.json").read_text())
    assert registration["version"] == "1"
    verdict = json.loads((project / "reports" / "drift" / "verdict.json").read_text())
    assert verdict["rows"]["current"] == data.meta["rows"]["test"]


def test_feedback_windows_the_stream_engine_does_not_add_are_named_in_a_warning(project: Path, tmp_path: Path) -> None:
    source = write_parts(tmp_path / "in", [mixed_frame(600, 1)])
    (project / "data" / "feedback").mkdir(parents=True)
    mixed_frame(50, 2).to_parquet(project / "data" / "feedback" / "window-1.parquet", index=False)
    proc = prepare(project, source, "data/p")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "1 labelled feedback window(s) in data/feedback are not added by prepare.engine=stream" in proc.stderr
    assert json.loads((project / "data" / "p" / "meta.json").read_text())["feedback_rows"] == 0


def test_split_key_split_does_not_depend_on_a_null_in_the_batch(project: Path, tmp_path: Path) -> None:
    """An int key column with a null turned the whole batch into float64 for the hash: every
    non-null key must get the same split whether or not its batch holds a null key."""
    import pyarrow as pa

    root = tmp_path / "in"
    root.mkdir()
    users = list(range(400))
    for i, keys in enumerate([users, [None, *users[1:]]]):
        frame = mixed_frame(400, i)
        table = pa.Table.from_pandas(frame, preserve_index=False).append_column("user", pa.array(keys, pa.int64()))
        pq.write_table(table, root / f"f{i}.parquet")
    proc = prepare(project, root, "data/k", "split.key=user")
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = PreparedData.open(project / "data" / "k")
    seen: dict[int, set] = {}
    for split in ("train", "val", "test"):
        for user in data.read(split)["user"].dropna():
            seen.setdefault(int(user), set()).add(split)
    assert len(seen) == 400 and all(len(s) == 1 for s in seen.values())  # both files' rows of a key together
    assert len({next(iter(s)) for s in seen.values()}) == 3
    meta = data.meta  # every part file listed, as written
    for split in ("train", "val", "test"):
        on_disk = sorted(str(p.relative_to(data.root)) for p in (data.root / f"{split}.parquet").glob("*.parquet"))
        assert meta["parts"][split] == on_disk and on_disk


def test_failed_input_checks_leave_the_previous_url_output_whole(project: Path, tmp_path: Path, s3_server) -> None:
    """On an object store the previous prepared data is deleted before a new one is written:
    a config the data does not fit is refused before that."""
    url = f"{s3_server.bucket('stream-checks')}/prepared"
    source = write_parts(tmp_path / "in", [mixed_frame(300, 1)])
    assert prepare(project, source, url, **s3_server.env).returncode == 0
    for bad in ("split.key=nope", "source.target=nope"):
        proc = prepare(project, source, url, bad, **s3_server.env)
        assert proc.returncode == 2 and "nope" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        keys = {o["Key"] for o in s3_server.client().list_objects_v2(Bucket="stream-checks")["Contents"]}
        assert "prepared/meta.json" in keys and any(k.startswith("prepared/train.parquet/") for k in keys)


def test_csv_later_files_widen_and_a_misfit_names_file_column_and_setting(project: Path, tmp_path: Path) -> None:
    root = tmp_path / "csv"
    root.mkdir()
    first = mixed_frame(300, 1).assign(note=None)
    first["count"] = first["count"].astype(int)  # integers in the first file ...
    first.to_csv(root / "a.csv", index=False)
    later = mixed_frame(300, 2).assign(note="some text")
    later.loc[0, "count"] = 7.5  # ... a fraction and text in the first file's all-empty column later
    later.to_csv(root / "b.csv", index=False)
    csv = ("source=csv", "source.target=label", f"source.path={root}", "prepare.engine=stream")
    proc = run_cli(project, "prepare", *csv, "paths.prepared=data/c")
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = PreparedData.open(project / "data" / "c")
    rows = pd.concat([data.read(s) for s in ("train", "val", "test")])
    assert 7.5 in set(rows["count"]) and "some text" in set(rows["note"]) and len(rows) == 600
    assert data.classes == [0, 1]  # the target stays integer
    mixed_frame(300, 3).assign(width="wide", note=None).to_csv(root / "c.csv", index=False)
    proc = run_cli(project, "prepare", *csv, "paths.prepared=data/c")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "c.csv" in proc.stderr and "'width'" in proc.stderr and "source.columns={width: str}" in proc.stderr
    mixed_frame(300, 3).drop(columns="width").to_csv(root / "c.csv", index=False)
    proc = run_cli(project, "prepare", *csv, "paths.prepared=data/c")
    assert proc.returncode == 2 and "c.csv" in proc.stderr and "width" in proc.stderr, proc.stderr[-2000:]
    assert "same columns" in proc.stderr and "Traceback" not in proc.stderr


def test_csv_schema_honours_the_declared_types() -> None:
    from types import SimpleNamespace

    import pyarrow as pa

    from aiinfra.data.stream_file import csv_schema

    inferred = pa.schema([("code", pa.int64()), ("n", pa.int64()), ("empty", pa.null()), ("y", pa.int64())])
    declared = SimpleNamespace(columns={"code": "str", "y": "float"}, target="y")
    assert csv_schema(inferred, declared).types == [pa.string(), pa.float64(), pa.string(), pa.float64()]
    plain = SimpleNamespace(columns=None, target="y")
    assert csv_schema(inferred, plain).types == [pa.float64(), pa.float64(), pa.string(), pa.int64()]


def test_input_files_skip_hidden_and_underscore_folders_and_names_drop_the_query(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from aiinfra.data.streaming import file_name, input_files

    for rel in ("day=1/a.parquet", "_temporary/0/b.parquet", ".p.tmp-1234/c.parquet", "day=2/_d.parquet"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        mixed_frame(5, 1).to_parquet(tmp_path / rel)
    cfg = SimpleNamespace(source=SimpleNamespace(type="parquet", path=str(tmp_path)))
    assert [f.name for f in input_files(cfg)[1]] == ["day=1/a.parquet"]
    signed = "https://bucket.example/k/data.parquet?X-Amz-Signature={}&X-Amz-Date=2026"
    assert file_name(signed.format("aaa")) == file_name(signed.format("bbb")) == "data.parquet"


def test_concurrent_finishes_leave_one_whole_output_and_nothing_beside(tmp_path: Path) -> None:
    import threading

    from aiinfra.data.streaming import _finish

    out = tmp_path / "p"
    works = []
    for i in range(8):
        work = tmp_path / f".p.tmp-{i:08d}"
        work.mkdir()
        (work / f"run-{i}").write_text("x")
        works.append(work)
    barrier, errors = threading.Barrier(len(works)), []

    def finish(work: Path) -> None:
        barrier.wait()
        try:
            _finish(str(work), str(out))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=finish, args=(w,)) for w in works]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(list(out.iterdir())) == 1  # one run's output, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]


def test_a_run_sweeps_stale_temporary_dirs_only(tmp_path: Path) -> None:
    import os
    import time

    from aiinfra.data.streaming import STALE_S, _workdir

    stale, fresh = tmp_path / ".p.tmp-00000001", tmp_path / ".p.tmp-00000002"
    for d in (stale, fresh):
        d.mkdir()
    old = time.time() - STALE_S - 60
    os.utime(stale, (old, old))
    work = _workdir(str(tmp_path / "p"))
    assert not stale.exists() and fresh.exists() and work.startswith(str(tmp_path / ".p.tmp-"))


def test_presigned_source_redacted_in_meta_and_a_resigned_url_moves_no_row(project: Path, s3_server) -> None:
    from botocore.config import Config

    s3_server.bucket("stream-presigned")
    client = s3_server.client(Config(signature_version="s3v4"))
    client.put_object(Bucket="stream-presigned", Key="raw/rows.csv", Body=mixed_frame(300, 4).to_csv(index=False))
    params = {"Bucket": "stream-presigned", "Key": "raw/rows.csv"}
    outputs = []
    for expires in (600, 900):  # two signatures of the same file
        signed = client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires)
        signature = signed.split("X-Amz-Signature=", 1)[1].split("&", 1)[0]
        out = f"data/signed-{expires}"
        args = ("source=csv", f"source.path='{signed}'", "source.target=label", f"paths.prepared={out}")
        proc = run_cli(project, "prepare", "prepare.engine=stream", *args, **s3_server.env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        meta = (project / out / "meta.json").read_text()
        assert signature not in meta and signed.split("?", 1)[0] in meta and signature not in proc.stderr
        outputs.append(part_bytes(project / out))
    assert outputs[0] == outputs[1]  # the rows' hash names the file by its path, not its query


def test_a_missing_part_is_an_error_naming_it_and_a_stray_file_is_not_read(project: Path, tmp_path: Path) -> None:
    import pytest

    from aiinfra.errors import DataValidationError

    source = write_parts(tmp_path / "in", [mixed_frame(900, s) for s in range(3)])
    assert prepare(project, source, "data/p").returncode == 0
    root = project / "data" / "p"
    data = PreparedData.open(root)
    rows = len(data.read("train"))
    stray = root / "train.parquet" / "part-99999-000.parquet"
    stray.write_bytes((root / "train.parquet" / "part-00000-000.parquet").read_bytes())
    assert len(PreparedData.open(root).read("train")) == rows  # a file meta.json does not list is not read
    stray.unlink()
    (root / "train.parquet" / "part-00001-000.parquet").unlink()
    with pytest.raises(DataValidationError, match=r"lacks 1 of the 3 part files .*part-00001-000\.parquet"):
        PreparedData.open(root).read("train")
