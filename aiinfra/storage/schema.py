"""The ``storage`` section: the object-store endpoint every aiinfra process uses.

Credentials are never config: they come from the standard chains (environment variables such as
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, a profile, an instance role), and validation
refuses an endpoint URL that carries a user or password.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from aiinfra.config.checks import at_least, fail, require


@dataclass
class StorageConfig:
    # an S3-compatible endpoint (MinIO, Ceph, R2, a test server): exported as AWS_ENDPOINT_URL and
    # MLFLOW_S3_ENDPOINT_URL to this process and every process it starts (server workers, the
    # monitor's report process, DVC, MLflow); null: the environment's own (or AWS itself)
    endpoint_url: str | None = None
    region: str | None = None  # exported as AWS_DEFAULT_REGION when set
    # before a stage runs, every object-store URL of the config is checked (endpoint reachable,
    # bucket present, credentials accepted): one error naming the URL instead of a stack trace later
    preflight: bool = True
    connect_timeout_s: float = 5.0

    def check(self) -> None:
        at_least(self, 0.1, "connect_timeout_s")
        if self.endpoint_url:
            parts = urlsplit(self.endpoint_url)
            require(
                parts.scheme in ("http", "https") and bool(parts.netloc),
                "endpoint_url",
                f"must be an http(s) URL such as http://127.0.0.1:9000, got {self.endpoint_url!r}",
            )
            if parts.username or parts.password:
                fail(
                    "endpoint_url",
                    "must not carry a user or password (credentials come from the environment)",
                    hint="put the keys in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and give the URL without them",
                )
