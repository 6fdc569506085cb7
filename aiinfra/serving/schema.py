"""Config schemas of the built-in serving targets (``conf/server/*.yaml``).

Import-light on purpose: config validation imports this before torch or mlflow is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class HttpServerConfig:
    type: str = "http"
    # models:/<name>@<alias>, models:/<name>/<version>, or a local model directory.
    # null: models:/<register.model_name>@<register.alias>
    model_uri: Optional[str] = None
    host: str = "127.0.0.1"
    port: int = 8000
    # --- processes and threads (defaults measured on a 2-core box: docs/serving.md)
    workers: int = 1  # uvicorn worker processes; each loads the model and logs its own parts
    torch_threads: int = 1  # intra-op threads per process; tiny models lose time to thread hand-offs
    # --- request limits
    max_body_bytes: int = 1_048_576
    max_rows: int = 10_000
    # --- dynamic batching: concurrent requests are merged into one forward pass
    max_batch_size: int = 256  # rows per forward pass
    max_wait_ms: float = 0.0  # how long a batch waits for more rows; 0: take what arrived this loop turn
    max_queue_rows: int = 8192  # rows waiting for a forward pass; beyond that: 503 + Retry-After
    retry_after_s: int = 1
    # "inline": forward pass on the event loop (fastest for tiny models); "thread": in a worker thread
    # (keeps the loop responsive for models whose forward pass takes milliseconds)
    inference: str = "inline"
    # --- prediction log (Parquet, hive-partitioned by date and hour); null: <paths.logs>/predictions
    log_dir: Optional[str] = None
    prediction_log: bool = True
    # a part file is written when this many rows are buffered ... (5,000: building a bigger part holds
    # the GIL long enough to show in the p99 latency; measured in docs/serving.md)
    log_flush_rows: int = 5_000
    log_flush_interval_s: float = 10.0  # ... or this long after the first buffered row
    # --- labels for earlier predictions (POST /v2/models/{name}/feedback); null: <paths.logs>/feedback
    feedback_dir: Optional[str] = None
    # --- hot reload: re-resolve model_uri (an alias moves) every N seconds; 0: only on POST /admin/reload
    reload_interval_s: float = 30.0
    # --- access control. Keys: "<id>:<role>[+<role>]:<secret>" entries separated by ';' or newlines,
    # roles: predict, admin (admin implies predict). From the env var and/or the file.
    api_keys_env: str = "AIINFRA_API_KEYS"
    api_keys_file: Optional[str] = None
    # binding to a non-loopback address without keys is refused unless this is true
    allow_unauthenticated: bool = False
    metrics_public: bool = True  # /metrics without a key (scrapers on a private network)
    # --- access log: JSON lines (key id, never the key); "-" = stderr, null/"" = off
    access_log: Optional[str] = "-"
    graceful_timeout_s: float = 30.0  # SIGTERM: how long in-flight requests may take to finish


@dataclass
class BatchServerConfig:
    type: str = "batch"
    model_uri: Optional[str] = None
    input: str = "data/prepared/test.parquet"
    output: str = "reports/predictions.parquet"
    batch_rows: int = 65_536
    torch_threads: int = 0  # 0: torch's default (all cores): batch scoring is throughput-bound
    progress: bool = True
