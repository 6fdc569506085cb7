"""Config schemas of the built-in serving targets (``conf/server/*.yaml``) and their rules.

Import-light on purpose: config validation imports this before torch or mlflow is loaded, and every
range and cross-field rule of a server runs here (``check()``), not in the server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from aiinfra.config.checks import at_least, require

#: the file types ``server=batch`` reads and writes
SCORING_FORMATS = (".parquet", ".pq", ".csv")


class Inference(StrEnum):
    """Where the forward pass of a batch runs."""

    inline = "inline"  # on the event loop: fastest for tiny models (a thread hand-off costs more)
    thread = "thread"  # in one worker thread: keeps the loop responsive when a pass takes milliseconds


class LogFailurePolicy(StrEnum):
    """What the prediction log does while its disk fails or is full (docs/serving.md, Reliability)."""

    block = "block"  # keep every row; once log_buffer_rows are buffered, predictions answer 503 + Retry-After
    spool = "spool"  # write the parts to log_spool_dir instead; replayed into log_dir when it is back
    drop = "drop"  # keep answering; beyond log_buffer_rows drop the oldest rows (counted)


class ColumnPolicy(StrEnum):
    """What the prediction log and the feedback log keep of one input column."""

    keep = "keep"  # the value as sent
    drop = "drop"  # the column is not written at all
    hash = "hash"  # HMAC-SHA256 with a key from the environment (hex): equal values still join
    redact = "redact"  # the column is kept, every value replaced by "[redacted]" (nulls stay null)


@dataclass
class LogPrivacyConfig:
    """Privacy of the prediction log and the feedback log (docs/serving.md, Private logs)."""

    columns: dict[str, ColumnPolicy] = field(default_factory=dict)  # input column -> policy
    default: ColumnPolicy = ColumnPolicy.keep  # the policy of every column not listed
    hmac_key_env: str = "AIINFRA_LOG_HMAC_KEY"  # the key of `hash` (required when a column uses it)
    # Parquet modular encryption of every part (pyarrow); the monitor and the retrain export decrypt
    encrypt: bool = False
    # the KMS client that wraps the data keys: a registered component of kind ``kms``;
    # built in: env (master keys from the environment variable below)
    kms: str = field(default="env", metadata={"registered": "kms"})
    # kms=env: "<key id>:<base64 of a 16/24/32-byte key>" entries separated by ';'
    master_keys_env: str = "AIINFRA_LOG_MASTER_KEYS"
    footer_key: str = "footer"  # the master key id that protects each part's footer and columns
    # partitions (date=YYYY-MM-DD) older than this many days are deleted, each in the audit log; null: kept
    retention_days: int | None = None

    def check(self) -> None:
        require(
            self.retention_days is None or self.retention_days >= 1,
            "retention_days",
            f"must be >= 1 or null (keep forever), got {self.retention_days!r}",
        )


@dataclass
class TLSConfig:
    """HTTPS for the server: certificate and key files (PEM); ``client_ca`` turns on mutual TLS."""

    certfile: str | None = None
    keyfile: str | None = None
    keyfile_password_env: str | None = None  # the env var holding the key file's password, if it has one
    client_ca: str | None = None  # PEM bundle: clients must present a certificate it signed

    @property
    def enabled(self) -> bool:
        return bool(self.certfile)

    def check(self) -> None:
        require(
            bool(self.certfile) == bool(self.keyfile),
            "certfile" if not self.certfile else "keyfile",
            "certfile and keyfile go together",
            hint="server.tls.certfile=server.pem server.tls.keyfile=server.key",
        )
        require(not self.client_ca or bool(self.certfile), "client_ca", "needs certfile and keyfile (mutual TLS)")
        require(
            not self.keyfile_password_env or bool(self.keyfile),
            "keyfile_password_env",
            "is the password of server.tls.keyfile, and no keyfile is set",
        )


@dataclass
class HttpServerConfig:
    type: str = "http"
    # models:/<name>@<alias>, models:/<name>/<version>, or a local model directory.
    # null: models:/<register.model_name>@<register.alias>
    model_uri: str | None = None
    # what loads the model directory into a served model (a registered component of kind
    # ``runtime``, checked at validation): torch (built in), onnx (aiinfra-onnx), ...
    runtime: str = field(default="torch", metadata={"registered": "runtime"})
    host: str = "127.0.0.1"
    port: int = 8000
    # --- processes and threads (defaults measured on a 2-core box: docs/serving.md)
    workers: int = 1  # uvicorn worker processes; each loads the model and logs its own parts
    torch_threads: int = 1  # intra-op threads per process (0: torch's default); tiny models lose time to hand-offs
    # --- request limits
    max_body_bytes: int = 1_048_576
    max_rows: int = 10_000
    # --- dynamic batching: concurrent requests are merged into one forward pass
    max_batch_size: int = 256  # rows per forward pass
    max_wait_ms: float = 0.0  # how long a batch waits for more rows; 0: take what arrived this loop turn
    max_queue_rows: int = 8192  # rows waiting for a forward pass; beyond that: 503 + Retry-After
    retry_after_s: int = 1
    inference: Inference = Inference.inline
    # --- prediction log (Parquet, hive-partitioned by date and hour); null: <paths.logs>/predictions
    log_dir: str | None = None
    prediction_log: bool = True
    # a part file is written when this many rows are buffered ... (5,000: building a bigger part holds
    # the GIL long enough to show in the p99 latency; measured in docs/serving.md)
    log_flush_rows: int = 5_000
    log_flush_interval_s: float = 10.0  # ... or this long after the first buffered row
    # --- when the log's disk fails or fills: block | spool | drop (writes retried with exponential backoff)
    log_failure_policy: LogFailurePolicy = LogFailurePolicy.block
    log_buffer_rows: int = 100_000  # rows held in memory while writes fail (block: then 503; drop: then drop oldest)
    log_spool_dir: str | None = None  # policy spool: a directory on another disk (required for spool)
    # --- what the logs keep of each column, encryption at rest, retention
    log_privacy: LogPrivacyConfig = field(default_factory=LogPrivacyConfig)
    # --- HTTPS (and mutual TLS)
    tls: TLSConfig = field(default_factory=TLSConfig)
    # --- labels for earlier predictions (POST /v2/models/{name}/feedback); null: <paths.logs>/feedback
    feedback_dir: str | None = None
    # --- hot reload: re-resolve model_uri (an alias moves) every N seconds; 0: only on POST /admin/reload
    reload_interval_s: float = 30.0
    # --- access control. Keys: "<id>:<role>[+<role>]:<secret>" entries separated by ';' or newlines,
    # roles: predict, admin (admin implies predict). From the env var and/or the file.
    api_keys_env: str = "AIINFRA_API_KEYS"
    api_keys_file: str | None = None
    # binding to a non-loopback address without keys is refused unless this is true
    allow_unauthenticated: bool = False
    metrics_public: bool = True  # /metrics without a key (scrapers on a private network)
    # --- access log: JSON lines (key id, never the key); "-" = stderr, null/"" = off
    access_log: str | None = "-"
    graceful_timeout_s: float = 30.0  # SIGTERM: how long in-flight requests may take to finish
    # SIGTERM: readiness answers 503 at once; requests are still served this long (a load balancer
    # notices and stops sending), then the drain starts. 0: drain at once
    shutdown_delay_s: float = 0.0
    # --- hostile clients: a request whose headers and body take longer than this is answered 408
    # and closed (slowloris, stalled uploads); beyond max_connections open connections: 503
    body_timeout_s: float = 30.0
    max_connections: int = 1000
    # --- serving usage (CPU, memory, predictions; read by `aiinfra costs`): a line this often and at
    # shutdown to <paths.logs>/usage/serving-<host>-<pid>.jsonl, one file per process
    usage_interval_s: float = 60.0

    def check(self) -> None:
        require(0 <= self.port <= 65535, "port", f"must be between 0 and 65535, got {self.port}")
        require(bool(self.host), "host", "must name an address to listen on, e.g. 127.0.0.1")
        at_least(self, 1, "workers", "max_body_bytes", "max_rows", "max_batch_size", "max_queue_rows", "log_flush_rows")
        at_least(self, 1, "max_connections")
        at_least(
            self,
            0,
            "torch_threads",
            "max_wait_ms",
            "retry_after_s",
            "reload_interval_s",
            "graceful_timeout_s",
            "shutdown_delay_s",
        )
        require(
            self.log_flush_interval_s > 0, "log_flush_interval_s", f"must be > 0, got {self.log_flush_interval_s!r}"
        )
        require(self.body_timeout_s > 0, "body_timeout_s", f"must be > 0, got {self.body_timeout_s!r}")
        require(self.usage_interval_s > 0, "usage_interval_s", f"must be > 0, got {self.usage_interval_s!r}")
        # Ray Serve's proxy, not this server, terminates the connections of server=ray, and aiinfra
        # does not hand it the certificate (its mutual TLS cannot require client certificates either)
        require(
            self.type != "ray" or not self.tls.enabled,
            "tls",
            "is not supported with server=ray: Ray Serve's HTTP proxy accepts the connections",
            hint="terminate TLS in front of Ray (an ingress or load balancer), or serve with server=http",
        )
        require(
            self.log_buffer_rows >= self.log_flush_rows,
            "log_buffer_rows",
            f"must be at least log_flush_rows ({self.log_flush_rows}), got {self.log_buffer_rows}",
        )
        if self.log_failure_policy == LogFailurePolicy.spool:
            require(
                bool(self.log_spool_dir),
                "log_spool_dir",
                "is required with log_failure_policy=spool",
                hint="server.log_spool_dir=/other/disk/predictions-spool (a directory on another disk)",
            )
            require(
                not self.log_dir or Path(self.log_spool_dir).resolve() != Path(self.log_dir).resolve(),
                "log_spool_dir",
                "must differ from log_dir (the spool holds what log_dir could not take)",
            )


@dataclass
class BatchServerConfig:
    type: str = "batch"
    model_uri: str | None = None
    runtime: str = field(default="torch", metadata={"registered": "runtime"})  # as server.runtime of server=http
    input: str = "data/prepared/test.parquet"
    output: str = "reports/predictions.parquet"
    batch_rows: int = 65_536
    torch_threads: int = 0  # 0: torch's default (all cores): batch scoring is throughput-bound
    progress: bool = True

    def check(self) -> None:
        at_least(self, 1, "batch_rows")
        at_least(self, 0, "torch_threads")
        for key in ("input", "output"):
            suffix = Path(getattr(self, key)).suffix.lower()
            require(
                suffix in SCORING_FORMATS,
                key,
                f"unsupported file type '{suffix or '(none)'}' in '{getattr(self, key)}'",
                hint="use a .parquet or .csv file",
            )
