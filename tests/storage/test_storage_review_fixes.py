"""Fixes of the object-storage review: errors of a dead store are errors (not "no data"), a
failed write leaves no object, nothing secret in a message or a lasting record."""

from __future__ import annotations

import pytest

from aiinfra.errors import StorageError
from aiinfra.storage import urls
from project_helpers import free_port
from s3_helpers import SECRET, clear_s3fs_cache, keys, s3_env  # noqa: F401 - s3_env is a fixture


@pytest.fixture
def dead_endpoint(request, monkeypatch):
    """This process pointed at a port where nobody listens (and a secret key to leak)."""
    request.getfixturevalue("s3_env")
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    clear_s3fs_cache()
    import fsspec

    fsspec.config.conf["s3"] = {"config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}}}
    yield dead
    clear_s3fs_cache()


@pytest.mark.parametrize("probe", [urls.exists, urls.isfile, urls.isdir])
def test_an_unreachable_store_is_an_error_not_a_missing_object(dead_endpoint, probe):
    with pytest.raises(StorageError) as err:
        probe("s3://review-dead/prepared/meta.json")
    assert "s3://review-dead/prepared/meta.json" in str(err.value)
    assert SECRET not in str(err.value) + str(err.value.hint)


@pytest.mark.usefixtures("s3_env")
def test_probes_see_an_object_written_by_another_client_after_a_listing(s3_server):
    base = s3_server.bucket("review-probe-cache")
    assert not urls.exists(f"{base}/p/one.txt") and urls.glob(base, "p/*.txt") == []
    s3_server.client().put_object(Bucket="review-probe-cache", Key="p/one.txt", Body=b"1")
    assert urls.exists(f"{base}/p/one.txt") and urls.isfile(f"{base}/p/one.txt") and urls.isdir(f"{base}/p")
    assert not urls.isdir(f"{base}/p/one.txt") and not urls.isfile(f"{base}/p")


@pytest.mark.usefixtures("s3_env")
def test_a_failed_write_leaves_no_object(s3_server):
    base = s3_server.bucket("review-failed-write")
    with pytest.raises(RuntimeError), urls.open_file(f"{base}/half.bin", "wb") as f:
        f.write(b"x" * 1000)
        raise RuntimeError("the writer died half-way")
    with urls.open_file(f"{base}/whole.bin", "wb") as f:
        f.write(b"y" * 1000)
    assert keys(s3_server, "review-failed-write") == ["whole.bin"]


@pytest.mark.usefixtures("s3_env")
def test_a_failed_frame_write_leaves_no_object(s3_server):
    import pandas as pd

    from aiinfra.data.prepared import write_frame

    base = s3_server.bucket("review-failed-frame")
    frame = pd.DataFrame({"x": [1, 2], "bad": [object(), object()]})  # pyarrow cannot convert it
    with pytest.raises(Exception):  # noqa: B017, PT011 - pyarrow's own error; the point is what is left
        write_frame(frame, f"{base}/train.parquet")
    assert keys(s3_server, "review-failed-frame") == []


def test_a_library_error_text_is_not_repeated():
    # botocore's ParamValidationError echoes the request's parameters (here a key-like value)
    import botocore.exceptions as bx

    with pytest.raises(StorageError) as err, urls.storage_errors(f"s3://b/k?X-Amz-Signature={SECRET}", "source.path"):
        raise bx.ParamValidationError(report=f"Invalid SSECustomerKey {SECRET}")
    text = str(err.value) + str(err.value.hint)
    assert SECRET not in text and "ParamValidationError" in text and "s3://b/k" in text and "source.path" in text
    with pytest.raises(OSError) as err, urls.storage_errors("/tmp/local/file"):  # local: its own message
        raise OSError("disk full")
    assert "disk full" in str(err.value)
    with pytest.raises(KeyError), urls.storage_errors("s3://b/k"):  # a bug is not a storage error
        raise KeyError("x")
