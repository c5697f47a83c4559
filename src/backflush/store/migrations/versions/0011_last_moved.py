"""A count dated before its item's stock last moved is refused: the date each item's stock
on hand last moved, kept beside its quantities, filled from the movements and the summarised
events' details already written.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

from backflush.store.schema import Exact
from backflush.store.summaries import read_detail

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_events = sa.table(
    "events",
    sa.column("id", sa.String),
    sa.column("date", sa.Date),
    sa.column("detail", sa.Text),
)
_movements = sa.table(
    "movements",
    sa.column("cause", sa.String),
    sa.column("item", sa.String),
    sa.column("on_hand", Exact()),
)
_quantities = sa.table("quantities", sa.column("item", sa.String), sa.column("last_moved"))


def upgrade() -> None:
    with op.batch_alter_table("quantities") as batch:
        batch.add_column(sa.Column("last_moved", sa.Date))
    conn = op.get_bind()
    latest: dict[str, dt.date] = {}

    def moved(item: str, on: dt.date) -> None:
        if on > latest.get(item, dt.date.min):
            latest[item] = on

    query = sa.select(_movements.c.item, _movements.c.on_hand, _events.c.date).join(
        _events, _events.c.id == _movements.c.cause
    )
    for row in conn.execute(query):
        if row.on_hand:
            moved(row.item, row.date)
    details = sa.select(_events.c.id, _events.c.date, _events.c.detail).where(
        _events.c.detail.is_not(None)
    )
    for detailed in conn.execute(details):
        for movement in read_detail(detailed.id, detailed.detail)[1]:
            if movement.on_hand:
                moved(movement.item, detailed.date)
    for item, on in sorted(latest.items()):
        conn.execute(_quantities.update().where(_quantities.c.item == item).values(last_moved=on))


def downgrade() -> None:
    with op.batch_alter_table("quantities") as batch:
        batch.drop_column("last_moved")
