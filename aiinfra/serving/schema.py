"""Config schemas of the built-in serving targets (``conf/server/*.yaml``)."""

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
    max_body_bytes: int = 1_048_576
    max_rows: int = 10_000
    # prediction log directory (Parquet, partitioned by date and hour); null: <paths.logs>/predictions
    log_dir: Optional[str] = None


@dataclass
class BatchServerConfig:
    type: str = "batch"
    model_uri: Optional[str] = None
    input: str = "data/prepared/test.parquet"
    output: str = "reports/predictions.parquet"
    batch_rows: int = 65_536
