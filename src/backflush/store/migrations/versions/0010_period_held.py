"""A close values stock in process and the shortage queue as they stood at its period's end:
their change per period, filled from the movements, the summarised events' details and the
shortage queue already written.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa
from alembic import op

from backflush.domain.model import period_of
from backflush.domain.money import ZERO
from backflush.store.schema import Exact
from backflush.store.summaries import read_detail

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_events = sa.table(
    "events",
    sa.column("id", sa.String),
    sa.column("type", sa.String),
    sa.column("date", sa.Date),
    sa.column("detail", sa.Text),
)
_movements = sa.table(
    "movements",
    sa.column("event", sa.String),
    sa.column("cause", sa.String),
    sa.column("item", sa.String),
    sa.column("on_hand", Exact()),
    sa.column("in_process", Exact()),
)
_shortages = sa.table(
    "shortages",
    sa.column("event", sa.String),
    sa.column("item", sa.String),
    sa.column("kind", sa.String),
    sa.column("date", sa.Date),
    sa.column("quantity", Exact()),
    sa.column("open", Exact()),
    sa.column("into_process", sa.Boolean),
    sa.column("cleared_by", sa.String),
)
_reopens = sa.table("period_reopens", sa.column("event", sa.String), sa.column("period"))


def upgrade() -> None:
    held = op.create_table(
        "period_held",
        sa.Column("period", sa.String(7), primary_key=True),
        sa.Column("item", sa.String(200), primary_key=True),
        sa.Column("part", sa.String(16), primary_key=True),
        sa.Column("quantity", Exact(), nullable=False),
    )
    assert held is not None
    found = _changes(op.get_bind())
    if found:
        op.bulk_insert(
            held,
            [
                {"period": p, "item": i, "part": k, "quantity": q}
                for (p, i, k), q in sorted(found.items())
                if q
            ],
        )


def _changes(conn: sa.Connection) -> dict[tuple[str, str, str], Decimal]:
    """What the book's history changed per (period, item, part), as ``Book._move`` and
    ``Book._set_shortage`` count it: in the period of the event that caused the change (a
    reopen moves stock back in the period it reopens)."""
    found: dict[tuple[str, str, str], Decimal] = {}

    def add(period: str, item: str, part: str, quantity: Decimal) -> None:
        if quantity:
            found[(period, item, part)] = found.get((period, item, part), ZERO) + quantity

    reopened = {row.event: row.period for row in conn.execute(sa.select(_reopens))}
    # Queue entries cleared by a receipt (or a retry): the movement it caused, per entry.
    taken: dict[tuple[str, str], Decimal] = {}
    cleared: list[tuple[str, str, str, Decimal]] = []
    query = sa.select(
        _movements.c.event,
        _movements.c.cause,
        _movements.c.item,
        _movements.c.on_hand,
        _movements.c.in_process,
        _events.c.type,
        _events.c.date,
    ).join(_events, _events.c.id == _movements.c.cause)
    for row in conn.execute(query):
        period = reopened.get(row.cause) if row.type == "reopen" else None
        period = period or period_of(row.date)
        add(period, row.item, "in_process", row.in_process)
        if row.cause != row.event:
            taken[(row.event, row.item)] = taken.get((row.event, row.item), ZERO) - row.on_hand
            cleared.append((period, row.event, row.item, -row.on_hand))
    details = sa.select(_events.c.id, _events.c.date, _events.c.detail).where(
        _events.c.detail.is_not(None)
    )
    for detailed in conn.execute(details):
        for movement in read_detail(detailed.id, detailed.detail)[1]:
            add(period_of(detailed.date), movement.item, "in_process", movement.in_process)
    queued = (
        sa.select(_shortages, _events.c.date.label("cleared_on"))
        .outerjoin(_events, _events.c.id == _shortages.c.cleared_by)
        .where(_shortages.c.kind == "shortage")
    )
    parts: dict[tuple[str, str], str] = {}
    for entry in conn.execute(queued):
        part = parts[(entry.event, entry.item)] = "queued_in" if entry.into_process else "queued"
        add(period_of(entry.date), entry.item, part, entry.quantity)
        # What no receipt took was dropped by the reversal or write-off that cleared it.
        dropped = entry.quantity - entry.open - taken.get((entry.event, entry.item), ZERO)
        if dropped and entry.cleared_on is not None:
            add(period_of(entry.cleared_on), entry.item, part, -dropped)
    for period, event, item, quantity in cleared:
        if (event, item) in parts:
            add(period, item, parts[(event, item)], -quantity)
    return found


def downgrade() -> None:
    op.drop_table("period_held")
