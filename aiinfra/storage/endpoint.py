"""The object-store endpoint, one setting for every process, and the check before a stage runs.

``storage.endpoint_url`` is exported as ``AWS_ENDPOINT_URL`` (boto3, s3fs, DVC's s3 remote) and
``MLFLOW_S3_ENDPOINT_URL`` (MLflow's artifact client) into this process's environment, so every
process aiinfra starts inherits it: the server's workers, the monitor's report process, DVC,
``mlflow``. The most common object-store bug is an endpoint that reaches one process and not the
next; inheriting one environment closes it.

:func:`preflight` checks each object-store URL of the config (endpoint reachable, bucket present,
credentials accepted) before a stage runs: one :class:`~aiinfra.errors.StorageError` naming the
URL and the setting, never a credential.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from aiinfra.errors import StorageError
from aiinfra.storage.urls import is_remote, redact, scheme

log = logging.getLogger(__name__)

#: environment variables that carry the endpoint to each client library
ENDPOINT_VARS = ("AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL")


def apply(storage: Any) -> None:
    """Export ``storage.endpoint_url`` / ``storage.region`` to this process and its children.
    The config wins over the environment (the config is what the user composed for this run)."""
    if storage is None:
        return
    if storage.endpoint_url:
        for var in ENDPOINT_VARS:
            os.environ[var] = storage.endpoint_url
    if storage.region:
        os.environ["AWS_DEFAULT_REGION"] = storage.region


def endpoint() -> str:
    """The endpoint clients will use, for messages: the setting, or AWS itself."""
    # redacted: the environment's endpoint is not validated like storage.endpoint_url is
    found = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("MLFLOW_S3_ENDPOINT_URL")
    return redact(found) if found else "AWS S3 (no endpoint set)"


def config_urls(cfg: Any) -> dict[str, str]:
    """config key -> object-store URL, for every path setting of the config that is one."""
    from aiinfra.config.typed import string_settings

    return {
        key: value
        for key, value in string_settings(cfg)
        if "://" in value and is_remote(value) and scheme(value) in ("s3", "s3a")
    }


def _bucket(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[0]


def preflight(cfg: Any, stage: str) -> None:
    """Check every S3 URL of ``cfg`` (one request per bucket) when ``storage.preflight`` is on."""
    storage = getattr(cfg, "storage", None)
    if storage is None or not storage.preflight:
        return
    urls = config_urls(cfg)
    checked: set[str] = set()
    for key, url in urls.items():
        bucket = _bucket(url)
        if bucket in checked:
            continue
        checked.add(bucket)
        check_bucket(url, key, timeout_s=storage.connect_timeout_s)


def check_bucket(url: str, key: str = "", timeout_s: float = 5.0) -> None:
    """One request to the bucket of ``url``; a failure is one StorageError naming it and the fix."""
    import botocore.exceptions as bx

    try:
        import boto3
    except ImportError:  # pragma: no cover - s3fs brings botocore, boto3 is in the s3 extra
        raise StorageError(f"{redact(url)} needs boto3.", hint="pip install 'aiinfra[s3]'") from None
    from botocore.config import Config

    bucket = _bucket(url)
    where = f" ({key})" if key else ""
    client = boto3.client(
        "s3",
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
        config=Config(connect_timeout=timeout_s, read_timeout=timeout_s, retries={"max_attempts": 1}),
    )
    try:
        client.head_bucket(Bucket=bucket)
    except bx.EndpointConnectionError:
        raise StorageError(
            f"cannot reach the object store at {endpoint()} for {redact(url)}{where}.",
            hint="check storage.endpoint_url (or AWS_ENDPOINT_URL) and that the server is up",
        ) from None
    except bx.NoCredentialsError:
        raise StorageError(
            f"no credentials for {redact(url)}{where}.",
            hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment",
        ) from None
    except bx.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("404", "NoSuchBucket") or status == 404:
            raise StorageError(
                f"the bucket '{bucket}' of {redact(url)}{where} does not exist at {endpoint()}.",
                hint=f"create it (aws s3 mb s3://{bucket}) or fix the URL",
            ) from None
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch") or status == 403:
            raise StorageError(
                f"the object store at {endpoint()} refused the credentials for {redact(url)}{where}.",
                hint="check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the profile) of this environment",
            ) from None
        raise StorageError(f"{redact(url)}{where}: the object store answered {code or status}.") from None
    except (bx.ConnectTimeoutError, bx.ReadTimeoutError):
        raise StorageError(
            f"the object store at {endpoint()} did not answer within {timeout_s:g} s for {redact(url)}{where}.",
            hint="check storage.endpoint_url and the network; storage.connect_timeout_s sets the wait",
        ) from None
    except bx.BotoCoreError as exc:  # TLS, proxy, a malformed endpoint: still one line, no traceback
        raise StorageError(
            f"cannot use the object store at {endpoint()} for {redact(url)}{where}: {type(exc).__name__}.",
            hint="check storage.endpoint_url (or AWS_ENDPOINT_URL) and the network",
        ) from None
