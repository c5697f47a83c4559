"""The first schema of the persistent book.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backflush.store.schema import Exact

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "balances",
        sa.Column("account", sa.String(64), primary_key=True),
        sa.Column("element", sa.String(64), primary_key=True),
        sa.Column("amount", Exact(), nullable=False),
    )
    op.create_table(
        "book_settings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("triggers", sa.String(32), nullable=False),
        sa.Column("disposition", sa.String(16), nullable=False),
        sa.Column("inventory_unsold_conversion", sa.Boolean(), nullable=False),
        sa.Column("shortage", sa.String(16), nullable=False),
        sa.Column("rounding", sa.String(16), nullable=False),
        sa.Column("count_variance", sa.String(16), nullable=False),
        sa.Column("master_revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(200), nullable=False, unique=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("statistics", sa.Text(), nullable=False),
        sa.Column("reversed_by", sa.String(200)),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "items",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("uom", sa.String(16), nullable=False),
        sa.Column("flush", sa.String(16), nullable=False),
        sa.Column("material_cost", Exact()),
        sa.Column("conversion", sa.Text(), nullable=False),
        sa.Column("triggers", sa.String(32)),
    )
    op.create_table(
        "journal_lines",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("entry_no", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(200), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("memo", sa.Text(), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("element", sa.String(64), nullable=False),
        sa.Column("item", sa.String(200), nullable=False),
        sa.Column("amount", Exact(), nullable=False),
    )
    op.create_table(
        "movements",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("event", sa.String(200), nullable=False),
        sa.Column("cause", sa.String(200), nullable=False),
        sa.Column("item", sa.String(200), nullable=False),
        sa.Column("on_hand", Exact(), nullable=False),
        sa.Column("in_process", Exact(), nullable=False),
    )
    op.create_table(
        "period_activity",
        sa.Column("period", sa.String(7), primary_key=True),
        sa.Column("account", sa.String(64), primary_key=True),
        sa.Column("element", sa.String(64), primary_key=True),
        sa.Column("amount", Exact(), nullable=False),
    )
    op.create_table(
        "period_statistics",
        sa.Column("period", sa.String(7), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("amount", Exact(), nullable=False),
    )
    op.create_table(
        "period_quantities",
        sa.Column("period", sa.String(7), primary_key=True),
        sa.Column("item", sa.String(200), primary_key=True),
        sa.Column("on_hand", Exact(), nullable=False),
    )
    op.create_table(
        "periods",
        sa.Column("period", sa.String(7), primary_key=True),
        sa.Column("close_event", sa.String(200), nullable=False),
        sa.Column("variances", sa.Text(), nullable=False),
        sa.Column("balances", sa.Text(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "quantities",
        sa.Column("item", sa.String(200), primary_key=True),
        sa.Column("on_hand", Exact(), nullable=False),
        sa.Column("in_process", Exact(), nullable=False),
    )
    op.create_table(
        "shortages",
        sa.Column("seq", sa.Integer(), nullable=False, unique=True),
        sa.Column("event", sa.String(200), primary_key=True),
        sa.Column("item", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("quantity", Exact(), nullable=False),
        sa.Column("open", Exact(), nullable=False),
        sa.Column("into_process", sa.Boolean(), nullable=False),
        sa.Column("cleared_by", sa.String(200)),
    )
    op.create_table(
        "unsold_conversion",
        sa.Column("account", sa.String(64), primary_key=True),
        sa.Column("element", sa.String(64), primary_key=True),
        sa.Column("amount", Exact(), nullable=False),
    )
    op.create_table(
        "bom_lines",
        sa.Column("item", sa.String(200), sa.ForeignKey("items.id"), primary_key=True),
        sa.Column("effective_from", sa.Date(), primary_key=True),
        sa.Column("line_no", sa.Integer(), primary_key=True),
        sa.Column("component", sa.String(200), sa.ForeignKey("items.id"), nullable=False),
        sa.Column("quantity", Exact(), nullable=False),
        sa.Column("scrap", Exact(), nullable=False),
        sa.Column("flush", sa.String(16)),
    )
    op.create_index("ix_journal_lines_event", "journal_lines", ["event"])
    op.create_index("ix_journal_lines_period", "journal_lines", ["period"])
    op.create_index("ix_movements_event", "movements", ["event"])


def downgrade() -> None:
    op.drop_table("bom_lines")
    op.drop_table("unsold_conversion")
    op.drop_table("shortages")
    op.drop_table("quantities")
    op.drop_table("periods")
    op.drop_table("period_quantities")
    op.drop_table("period_statistics")
    op.drop_table("period_activity")
    op.drop_table("movements")
    op.drop_table("journal_lines")
    op.drop_table("items")
    op.drop_table("events")
    op.drop_table("book_settings")
    op.drop_table("balances")
