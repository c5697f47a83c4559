"""Issue 5, reports: items by product family and site; the journal summed per item; the
quantities moved per day. A book made before this revision gets both sums from its journal
and movements, so its reports read the same as a new book's.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import sqlalchemy as sa
from alembic import op

from backflush.book import flow_of
from backflush.store.schema import Exact

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("family", sa.String(200), nullable=False, server_default=""))
        batch.add_column(sa.Column("site", sa.String(200), nullable=False, server_default=""))
    item_activity = op.create_table(
        "item_activity",
        sa.Column("period", sa.String(7), primary_key=True),
        sa.Column("account", sa.String(64), primary_key=True),
        sa.Column("element", sa.String(64), primary_key=True),
        sa.Column("item", sa.String(200), primary_key=True),
        sa.Column("amount", Exact(), nullable=False),
    )
    daily_flows = op.create_table(
        "daily_flows",
        sa.Column("period", sa.String(7), primary_key=True),
        sa.Column("date", sa.Date, primary_key=True),
        sa.Column("flow", sa.String(32), primary_key=True),
        sa.Column("quantity", Exact(), nullable=False),
    )
    assert item_activity is not None and daily_flows is not None
    _sum_journal(item_activity)
    _sum_movements(daily_flows)


def _decimal(value: object) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _sum_journal(item_activity: sa.Table) -> None:
    """The journal's lines summed per period, account, element and item (in Python: SQLite
    keeps the amounts as text)."""
    bind = op.get_bind()
    lines = sa.table(
        "journal_lines",
        sa.column("period"),
        sa.column("account"),
        sa.column("element"),
        sa.column("item"),
        sa.column("amount", Exact()),
    )
    sums: dict[tuple[str, str, str, str], Decimal] = {}
    for period, account, element, item, amount in bind.execute(sa.select(lines)):
        key = (period, account, element, item)
        sums[key] = sums.get(key, Decimal(0)) + _decimal(amount)
    rows = [
        {"period": p, "account": a, "element": e, "item": i, "amount": v}
        for (p, a, e, i), v in sorted(sums.items())
    ]
    if rows:
        bind.execute(item_activity.insert(), rows)


def _sum_movements(daily_flows: sa.Table) -> None:
    """On-hand quantities moved per day (the date of the event that made them happen) and
    kind of flow (that of the event they belong to; a reversal's, of the event it reverses)."""
    bind = op.get_bind()
    events = sa.table(
        "events",
        sa.column("id"),
        sa.column("type"),
        sa.column("date", sa.Date),
        sa.column("payload"),
    )
    moves = sa.table(
        "movements", sa.column("event"), sa.column("cause"), sa.column("on_hand", Exact())
    )
    kinds: dict[str, tuple[str, dt.date | None]] = {}
    reverses: dict[str, str] = {}
    for event_id, kind, date, payload in bind.execute(
        sa.select(events.c.id, events.c.type, events.c.date, events.c.payload)
    ):
        kinds[event_id] = (kind, date)
        if kind == "reversal":
            reverses[event_id] = json.loads(payload).get("reverses", "")
    sums: dict[tuple[dt.date, str], Decimal] = {}
    for owner, cause, on_hand in bind.execute(
        sa.select(moves.c.event, moves.c.cause, moves.c.on_hand)
    ):
        quantity = _decimal(on_hand)
        kind, _ = kinds.get(owner, ("", None))
        sign = 1
        if kind == "reversal" and reverses.get(owner) in kinds:
            kind, sign = kinds[reverses[owner]][0], -1
        if not quantity and kind != "count":
            continue
        date = kinds.get(cause, kinds.get(owner, ("", None)))[1]
        if date is None:
            continue
        key = (date, flow_of(kind, sign * quantity))
        sums[key] = sums.get(key, Decimal(0)) + quantity
    rows = [
        {"period": f"{d:%Y-%m}", "date": d, "flow": f, "quantity": v}
        for (d, f), v in sorted(sums.items())
    ]
    if rows:
        bind.execute(daily_flows.insert(), rows)


def downgrade() -> None:
    op.drop_table("daily_flows")
    op.drop_table("item_activity")
    for column in ("site", "family"):  # in place: a batch copy of items breaks its foreign keys
        op.execute(f"ALTER TABLE items DROP COLUMN {column}")
