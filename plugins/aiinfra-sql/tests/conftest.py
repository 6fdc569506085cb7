from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest
import sqlalchemy as sa

T0 = datetime(2026, 1, 1, 8, 0, 0)


def make_orders(url: str, start: int, n: int) -> None:
    """Create (if needed) and append ``n`` rows with ids start+1..start+n, one minute apart."""
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    orders = sa.Table(
        "orders",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("amount", sa.Float),
        sa.Column("items", sa.Float),
        sa.Column("created_at", sa.DateTime),
        sa.Column("label", sa.Integer),
    )
    meta.create_all(engine)
    rng = np.random.default_rng(start)
    rows = []
    for i in range(start + 1, start + n + 1):
        amount, items = float(rng.normal(50, 10)), float(rng.integers(1, 9))
        rows.append(
            {
                "id": i,
                "amount": amount,
                "items": items,
                "created_at": T0 + timedelta(minutes=i),
                "label": int(amount > 50),
            }
        )
    with engine.begin() as conn:
        conn.execute(orders.insert(), rows)
    engine.dispose()


@pytest.fixture
def db_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    make_orders(url, 0, 100)
    return url
