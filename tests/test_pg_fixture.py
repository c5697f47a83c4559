"""Smoke test for the throwaway PostgreSQL fixtures in conftest.py."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa


@pytest.mark.postgres
def test_numeric_round_trip_is_exact(pg_db_url: str) -> None:
    value = Decimal("12345678901234567890.123456789")
    metadata = sa.MetaData()
    amounts = sa.Table(
        "amounts",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("amount", sa.Numeric(38, 9), nullable=False),
    )
    engine = sa.create_engine(pg_db_url)
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(amounts.insert().values(id=1, amount=value))
        with engine.connect() as conn:
            got = conn.execute(sa.select(amounts.c.amount).where(amounts.c.id == 1)).scalar_one()
    finally:
        engine.dispose()
    assert isinstance(got, Decimal)
    assert got == value
    assert str(got) == "12345678901234567890.123456789"
