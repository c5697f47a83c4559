"""Issue 4, the period close: period flows per item, exceptions resolution, reopened
periods, net realisable value.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backflush.store.schema import Exact

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _period_flows()
    _dispositions()
    _close_procedure()
    _net_realisable_value()


def _period_flows() -> None:
    """Quantities moved per period, item and kind of flow (receipts, backflush, counts, ...)."""
    op.create_table(
        "period_flows",
        sa.Column("period", sa.String(7), primary_key=True),
        sa.Column("item", sa.String(200), primary_key=True),
        sa.Column("flow", sa.String(32), primary_key=True),
        sa.Column("quantity", Exact(), nullable=False),
    )


def _dispositions() -> None:
    """Dispositions by variance type, as JSON {variance type: disposition}."""
    with op.batch_alter_table("book_settings") as batch:
        batch.add_column(sa.Column("dispositions", sa.Text(), nullable=False, server_default="{}"))


# ---------------------------------------------------------------- close procedure


def _close_procedure() -> None:
    """Exceptions resolved with a reason; periods reopened; the close's exceptions policy."""
    op.add_column(
        "book_settings",
        sa.Column("exceptions_at_close", sa.String(16), nullable=False, server_default="warn"),
    )
    op.create_table(
        "period_reopens",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event", sa.String(200), nullable=False, unique=True),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("date", sa.Date, nullable=False),
        sa.Column("close_event", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("reopened_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "exception_write_offs",
        sa.Column("event", sa.String(200), primary_key=True),
        sa.Column("item", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("written_off_by", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )


# ---------------------------------------------------------------- net realisable value


def _net_realisable_value() -> None:
    """Net realisable value per item and the write-downs that stand."""
    with op.batch_alter_table("book_settings") as batch:
        batch.add_column(
            sa.Column("lower_of_cost", sa.String(16), nullable=False, server_default="ifrs")
        )
    op.create_table(
        "nrv_estimates",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event", sa.String(200), nullable=False, unique=True),
        sa.Column("item", sa.String(200), sa.ForeignKey("items.id"), nullable=False),
        sa.Column("date", sa.Date, nullable=False),
        sa.Column("unit_value", Exact(), nullable=False),
    )
    op.create_table(
        "nrv_allowances",
        sa.Column("item", sa.String(200), primary_key=True),
        sa.Column("amount", Exact(), nullable=False),
    )
    op.create_table(
        "nrv_writedowns",
        sa.Column("period", sa.String(7), primary_key=True),
        sa.Column("item", sa.String(200), primary_key=True),
        sa.Column("quantity", Exact(), nullable=False),
        sa.Column("standard", Exact(), nullable=False),
        sa.Column("nrv", Exact()),
        sa.Column("unit_writedown", Exact(), nullable=False),
        sa.Column("allowance", Exact(), nullable=False),
        sa.Column("change", Exact(), nullable=False),
    )
    _close_indexes()


def _close_indexes() -> None:
    """What the close reads on a book of millions of events, without scanning whole tables:
    the next journal entry number, the last revaluation (bench/bench_close.py)."""
    op.create_index("ix_journal_lines_entry_no", "journal_lines", ["entry_no"])
    op.create_index("ix_events_type_seq", "events", ["type", "seq"])


def downgrade() -> None:
    _downgrade_net_realisable_value()
    _downgrade_close_procedure()
    with op.batch_alter_table("book_settings") as batch:
        batch.drop_column("dispositions")
    op.drop_table("period_flows")


def _downgrade_close_procedure() -> None:
    op.drop_table("exception_write_offs")
    op.drop_table("period_reopens")
    with op.batch_alter_table("book_settings") as batch:
        batch.drop_column("exceptions_at_close")


def _downgrade_net_realisable_value() -> None:
    op.drop_index("ix_events_type_seq", "events")
    op.drop_index("ix_journal_lines_entry_no", "journal_lines")
    op.drop_table("nrv_writedowns")
    op.drop_table("nrv_allowances")
    op.drop_table("nrv_estimates")
    with op.batch_alter_table("book_settings") as batch:
        batch.drop_column("lower_of_cost")
