"""Issue 5, reports at scale: the journal in figures per period and kind of entry, filled
from the journal already written.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backflush.domain.journal import KindFigures, entry_kind
from backflush.domain.money import ZERO
from backflush.store.schema import Exact

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    summary = op.create_table(
        "journal_summary",
        sa.Column("period", sa.String(7), primary_key=True),
        sa.Column("kind", sa.String(200), primary_key=True),
        sa.Column("entries", sa.Integer, nullable=False),
        sa.Column("lines", sa.Integer, nullable=False),
        sa.Column("debits", Exact(), nullable=False),
    )
    assert summary is not None
    lines = sa.table(
        "journal_lines",
        sa.column("entry_no", sa.Integer),
        sa.column("period", sa.String),
        sa.column("memo", sa.Text),
        sa.column("amount", Exact()),
    )
    query = sa.select(lines.c.entry_no, lines.c.period, lines.c.memo, lines.c.amount).order_by(
        lines.c.entry_no
    )
    found: dict[tuple[str, str], KindFigures] = {}
    last = None
    for row in op.get_bind().execute(query):
        key = (row.period, entry_kind(row.memo))
        debit = row.amount if row.amount > 0 else ZERO
        found[key] = found.get(key, KindFigures()) + KindFigures(
            int(row.entry_no != last), 1, debit
        )
        last = row.entry_no
    if found:
        op.bulk_insert(
            summary,
            [
                {"period": p, "kind": k, "entries": f.entries, "lines": f.lines,
                 "debits": f.debits}
                for (p, k), f in sorted(found.items())
            ],
        )  # fmt: skip


def downgrade() -> None:
    op.drop_table("journal_summary")
