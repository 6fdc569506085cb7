"""aiinfra.storage.urls on a real S3 API (moto's server) and on the local disk: one set of calls,
the same answers; errors name the URL and never a credential."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from aiinfra.errors import StorageError
from aiinfra.storage import urls
from s3_helpers import keys, s3_env  # noqa: F401 - s3_env is a fixture


@pytest.fixture(params=["local", "s3"])
def base(request, tmp_path, s3_server):
    """A fresh directory: a local one, or a prefix in a fresh bucket of the S3 server."""
    if request.param == "local":
        return str(tmp_path / "store")
    request.getfixturevalue("s3_env")
    return s3_server.bucket(f"urls-{request.node.name.split('[')[0][-30:].replace('_', '-')}") + "/store"


def test_join_keeps_slashes_for_urls_and_os_paths_locally(tmp_path):
    assert urls.join("s3://b/prefix/", "date=1", "/part.parquet") == "s3://b/prefix/date=1/part.parquet"
    assert urls.join(str(tmp_path), "a", "b") == str(tmp_path / "a" / "b")
    assert urls.join("file://" + str(tmp_path), "a") == str(tmp_path / "a")
    assert urls.is_remote("s3://b/k") and not urls.is_remote(str(tmp_path)) and not urls.is_remote("file:///x")


def test_write_read_glob_remove_round_trip(base):
    urls.write_text(urls.join(base, "a.txt"), "alpha")
    urls.write_bytes(urls.join(base, "sub", "b.bin"), b"\x00\x01")
    assert urls.read_text(urls.join(base, "a.txt")) == "alpha"
    assert urls.read_bytes(urls.join(base, "sub", "b.bin")) == b"\x00\x01"
    assert urls.exists(base) and urls.isdir(urls.join(base, "sub")) and urls.isfile(urls.join(base, "a.txt"))
    assert not urls.isfile(urls.join(base, "sub")) and not urls.exists(urls.join(base, "nope.txt"))
    found = urls.glob(base, "**/*.bin")
    assert found == [urls.join(base, "sub", "b.bin")]
    urls.remove(urls.join(base, "a.txt"))
    assert not urls.exists(urls.join(base, "a.txt"))
    urls.remove(urls.join(base, "a.txt"))  # missing: not an error
    urls.remove(urls.join(base, "sub"), recursive=True)
    assert urls.glob(base, "**/*.bin") == []


def test_glob_sees_objects_written_after_an_earlier_listing(base, s3_server):
    # a watching monitor lists the log again and again: fsspec's listing cache must not hide new
    # parts written by ANOTHER process (this process's own writes invalidate its cache anyway)
    urls.write_text(urls.join(base, "p", "one.txt"), "1")
    assert len(urls.glob(base, "p/*.txt")) == 1
    if urls.is_remote(base):
        bucket, key = base.split("://", 1)[1].split("/", 1)
        s3_server.client().put_object(Bucket=bucket, Key=f"{key}/p/two.txt", Body=b"2")
    else:
        urls.write_text(urls.join(base, "p", "two.txt"), "2")
    assert len(urls.glob(base, "p/*.txt")) == 2


def test_arrow_filesystem_reads_a_dataset_under_the_prefix(base):
    urls.makedirs(urls.join(base, "data"))  # a no-op on an object store
    for i in range(2):
        fs, inner = urls.arrow_filesystem(urls.join(base, "data", f"part-{i}.parquet"))
        pq.write_table(pa.table({"x": [i, i + 10]}), inner, filesystem=fs)
    fs, inner = urls.arrow_filesystem(urls.join(base, "data"))
    table = ds.dataset(inner, filesystem=fs, format="parquet").to_table()
    assert sorted(table.column("x").to_pylist()) == [0, 1, 10, 11]
    files = urls.glob(urls.join(base, "data"), "*.parquet")
    by_list = ds.dataset([urls.inner_path(f) for f in files], filesystem=fs, format="parquet").to_table()
    assert by_list.num_rows == 4


@pytest.mark.usefixtures("s3_env")
def test_download_and_upload_dir_copy_a_tree(s3_server, tmp_path):
    src = tmp_path / "src"
    (src / "nested").mkdir(parents=True)
    (src / "model.json").write_text("{}")
    (src / "nested" / "weights.pt").write_bytes(b"w" * 1000)
    url = s3_server.bucket("urls-tree") + "/models/model"
    urls.upload_dir(src, url)
    assert keys(s3_server, "urls-tree") == ["models/model/model.json", "models/model/nested/weights.pt"]
    dest = urls.download_dir(url, tmp_path / "dest")
    assert (dest / "model.json").read_text() == "{}"
    assert (dest / "nested" / "weights.pt").read_bytes() == b"w" * 1000
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
        "model.json",
        "nested/weights.pt",
    ]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("s3://AKIAXXXX:topsecret@bucket/key.csv", "s3://bucket/key.csv"),
        (
            "https://user:pw@host.example:8443/a/b?X-Amz-Signature=abc&X-Amz-Credential=k",
            "https://host.example:8443/a/b",
        ),
        ("s3://bucket/key?versionId=1", "s3://bucket/key"),
        ("data/local.csv", "data/local.csv"),
    ],
)
def test_redact_strips_credentials_and_query(url, shown):
    assert urls.redact(url) == shown


@pytest.mark.usefixtures("s3_env")
def test_a_missing_object_is_one_storage_error_naming_it(s3_server):
    url = s3_server.bucket("urls-missing") + "/no/such.csv"
    with pytest.raises(StorageError) as info, urls.storage_errors(url, "source.path"):
        urls.read_bytes(url)
    assert "s3://urls-missing/no/such.csv" in info.value.message and "source.path" in info.value.message
    assert s3_server.SECRET_KEY not in str(info.value)


def test_local_errors_pass_through_unchanged(tmp_path):
    with pytest.raises(FileNotFoundError), urls.storage_errors(tmp_path / "missing.csv"):
        urls.read_bytes(tmp_path / "missing.csv")


def test_absolute_resolves_local_paths_and_keeps_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert urls.absolute("logs/predictions") == str(tmp_path / "logs" / "predictions")
    assert urls.absolute("s3://b/logs/") == "s3://b/logs"
