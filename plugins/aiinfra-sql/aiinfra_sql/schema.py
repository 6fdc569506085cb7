"""Config schema of the ``sql`` source (``conf/source/sql.yaml``). Light: dataclasses only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from aiinfra.config.schema import SourceConfig


@dataclass
class IncrementalConfig:
    """Read only rows whose ``column`` is greater than the largest value of the last run."""

    enabled: bool = False
    column: Optional[str] = None  # a monotonically growing column: id, created_at, updated_at
    state_file: str = ".aiinfra/sql_state.json"  # the watermarks, one per source (JSON)
    # lower bound for the first run (None: everything); a number or an ISO date string
    start: Optional[str] = None
    # "stage": the watermark moves when `aiinfra prepare` finished; "read": as soon as rows are read
    commit: str = "stage"


@dataclass
class SQLSourceConfig(SourceConfig):
    # SQLAlchemy URL, e.g. sqlite:///data/raw/shop.db or postgresql+psycopg://user@host/db.
    url: Optional[str] = None
    # name of an environment variable that holds the URL (keeps passwords out of params.yaml)
    url_env: Optional[str] = None
    table: Optional[str] = None  # a table (or view) name, or:
    query: Optional[str] = None  # a SELECT; may use :name parameters from `params`
    params: dict[str, Any] = field(default_factory=dict)
    db_schema: Optional[str] = None  # database schema of `table` (PostgreSQL: public ...)
    exclude: list[str] = field(default_factory=list)  # columns to drop after reading (ids, timestamps)
    incremental: IncrementalConfig = field(default_factory=IncrementalConfig)
