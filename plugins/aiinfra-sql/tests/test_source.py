"""The sql source against a real sqlite database (a PostgreSQL URL goes through the same code)."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from aiinfra.config.checks import run_checks
from aiinfra.errors import ConfigError, DataValidationError
from aiinfra_sql import state
from aiinfra_sql.schema import Commit, SQLSourceConfig
from aiinfra_sql.source import SQLSource
from conftest import make_orders


def cfg(**kw) -> SQLSourceConfig:
    """The typed ``source`` section the source receives: merged onto the schema, its rules checked."""
    merged = OmegaConf.merge(
        OmegaConf.structured(SQLSourceConfig), {"type": "sql", "target": "label", "url_env": None, **kw}
    )
    typed = OmegaConf.to_object(merged)
    run_checks(typed, "source")
    return typed


def test_reads_a_table_and_drops_excluded_columns(db_url):
    frame = SQLSource(cfg(url=db_url, table="orders", exclude=["id", "created_at"])).read()
    assert len(frame) == 100
    assert list(frame.columns) == ["amount", "items", "label"]
    assert frame["label"].isin([0, 1]).all()


def test_reads_a_query_with_parameters(db_url):
    frame = SQLSource(
        cfg(url=db_url, query="SELECT id, amount, label FROM orders WHERE items >= :n", params={"n": 5})
    ).read()
    assert 0 < len(frame) < 100
    assert set(frame.columns) == {"id", "amount", "label"}


def test_url_from_environment_variable(db_url, monkeypatch):
    monkeypatch.setenv("SHOP_DB", db_url)
    assert len(SQLSource(cfg(url_env="SHOP_DB", table="orders")).read()) == 100


def test_incremental_table_reads_only_rows_newer_than_the_last_run(db_url, tmp_path):
    state_file = tmp_path / "state.json"
    c = cfg(url=db_url, table="orders", incremental={"enabled": True, "column": "id", "state_file": str(state_file)})
    first = SQLSource(c).read()
    assert first["id"].tolist() == list(range(1, 101))
    # not committed yet (the stage did not finish): the same window again
    assert SQLSource(c).read()["id"].min() == 1
    assert state.commit_pending(c) is True
    saved = json.loads(state_file.read_text())
    assert list(saved["committed"].values()) == [{"type": "int", "value": 100}]

    make_orders(db_url, 100, 30)
    second = SQLSource(c).read()
    assert second["id"].tolist() == list(range(101, 131))
    state.commit_pending(c)

    with pytest.raises(DataValidationError, match=r"no rows in table 'orders'.*id > 130"):
        SQLSource(c).read()


def test_incremental_by_timestamp_with_a_start_and_commit_on_read(db_url, tmp_path):
    c = cfg(
        url=db_url,
        table="orders",
        incremental={
            "enabled": True,
            "column": "created_at",
            "state_file": str(tmp_path / "s.json"),
            "start": "2026-01-01T09:00:00",
            "commit": "read",
        },
    )
    first = SQLSource(c).read()
    assert first["id"].min() == 61 and first["id"].max() == 100  # 08:00 + 61 min > 09:00
    make_orders(db_url, 100, 5)
    assert SQLSource(c).read()["id"].tolist() == [101, 102, 103, 104, 105]
    saved = json.loads((tmp_path / "s.json").read_text())
    assert list(saved["committed"].values())[0]["type"] == "datetime"


def test_incremental_query(db_url, tmp_path):
    c = cfg(
        url=db_url,
        query="SELECT id, amount, label FROM orders WHERE items > 1",
        incremental={"enabled": True, "column": "id", "state_file": str(tmp_path / "s.json"), "commit": "read"},
    )
    first = SQLSource(c).read()
    make_orders(db_url, 100, 40)
    second = SQLSource(c).read()
    assert second["id"].min() > first["id"].max()
    assert len(second) > 0


def test_clear_errors(db_url, monkeypatch):
    monkeypatch.delenv("AIINFRA_SQL_URL", raising=False)
    with pytest.raises(ConfigError, match="no database URL") as exc:
        SQLSource(cfg(url_env="AIINFRA_SQL_URL", table="orders"))
    assert "AIINFRA_SQL_URL" in exc.value.hint
    with pytest.raises(ConfigError, match="table 'order' not found.*Did you mean 'orders'"):
        SQLSource(cfg(url=db_url, table="order")).read()
    with pytest.raises(ConfigError, match="incremental column 'idd'.*Did you mean 'id'"):
        SQLSource(cfg(url=db_url, table="orders", incremental={"enabled": True, "column": "idd"})).read()
    with pytest.raises(DataValidationError, match="cannot read from the query.*OperationalError"):
        SQLSource(cfg(url=db_url, query="SELECT nope FROM orders")).read()


def test_password_never_in_the_state_key():
    key = state.source_key("postgresql+psycopg://me:s3cret@db:5432/shop", "orders", None, "id")
    assert "s3cret" not in key and key.startswith("postgresql+psycopg://me:***@db:5432/shop|table:orders")


@pytest.mark.parametrize(
    "kw, key, message",
    [
        ({"url": "sqlite://"}, "source.table", "exactly one of source.table and source.query"),
        ({"url": "sqlite://", "table": "orders", "query": "SELECT 1"}, "source.table", "exactly one of"),
        ({"table": "orders"}, "source.url", "no database URL"),
        (
            {"url": "sqlite://", "table": "orders", "incremental": {"enabled": True}},
            "source.incremental.column",
            "must name a growing column",
        ),
    ],
)
def test_rules_between_fields_fail_in_validation(kw, key, message):
    with pytest.raises(ConfigError, match=message) as exc:
        cfg(**kw)
    assert str(exc.value).startswith(f"{key}: ")


@pytest.mark.parametrize("commit", list(Commit))
def test_every_commit_option_validates(commit):
    assert (
        cfg(
            url="sqlite://", table="orders", incremental={"enabled": True, "column": "id", "commit": commit.value}
        ).incremental.commit
        == commit
    )


def test_an_unknown_commit_option_names_the_key():
    with pytest.raises(Exception, match="never") as exc:
        cfg(url="sqlite://", table="orders", incremental={"commit": "never"})
    assert "incremental.commit" in str(exc.value)
