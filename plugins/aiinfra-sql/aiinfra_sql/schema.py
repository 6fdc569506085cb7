"""Config schema of the ``sql`` source (``conf/source/sql.yaml``). Light: dataclasses only.

The rules between the fields (a table or a query, a column for incremental reads) are checked in
validation, before any database is touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from aiinfra.config.checks import fail, require
from aiinfra.config.schema import SourceConfig


class Commit(StrEnum):
    """When an incremental read's new watermark becomes the lower bound of the next run."""

    stage = "stage"  # once `aiinfra prepare` finished: a failed run reads the same window again
    read = "read"  # as soon as the rows are read


@dataclass
class IncrementalConfig:
    """Read only rows whose ``column`` is greater than the largest value of the last run."""

    enabled: bool = False
    column: str | None = None  # a monotonically growing column: id, created_at, updated_at
    state_file: str = ".aiinfra/sql_state.json"  # the watermarks, one per source (JSON)
    # lower bound for the first run (None: everything); a number or an ISO date string
    start: str | None = None
    commit: Commit = Commit.stage

    def check(self) -> None:
        require(
            not self.enabled or bool(self.column),
            "column",
            "must name a growing column when incremental.enabled is true",
            hint="source.incremental.column=created_at (or an id)",
        )
        require(bool(self.state_file), "state_file", "must be a file path")


@dataclass
class SQLSourceConfig(SourceConfig):
    # SQLAlchemy URL, e.g. sqlite:///data/raw/shop.db or postgresql+psycopg://user@host/db.
    url: str | None = None
    # name of an environment variable that holds the URL (keeps passwords out of params.yaml)
    url_env: str | None = None
    table: str | None = None  # a table (or view) name, or:
    query: str | None = None  # a SELECT; may use :name parameters from `params`
    params: dict[str, Any] = field(default_factory=dict)
    db_schema: str | None = None  # database schema of `table` (PostgreSQL: public ...)
    exclude: list[str] = field(default_factory=list)  # columns to drop after reading (ids, timestamps)
    incremental: IncrementalConfig = field(default_factory=IncrementalConfig)

    def check(self) -> None:
        super().check()
        if bool(self.table) == bool(self.query):
            fail(
                "table",
                "the sql source needs exactly one of source.table and source.query.",
                hint="source.table=orders, or source.query='SELECT * FROM orders WHERE region = :r'",
            )
        require(
            bool(self.url) or bool(self.url_env),
            "url",
            "the sql source has no database URL.",
            hint="set source.url=sqlite:///path/to.db (or any SQLAlchemy URL), or source.url_env to the "
            "name of an environment variable that holds it",
        )
