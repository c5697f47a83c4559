"""Work centers, routings, cost sets, production orders; lot sizes, BOM line operations,
version end dates.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backflush.store.schema import Exact

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("lot_size", Exact(), nullable=False, server_default="1"))
    with op.batch_alter_table("bom_lines") as batch:
        batch.add_column(sa.Column("effective_to", sa.Date()))
        batch.add_column(sa.Column("operation", sa.Integer()))
    op.create_table(
        "work_centers",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
    )
    op.create_table(
        "work_center_rates",
        sa.Column(
            "work_center", sa.String(200), sa.ForeignKey("work_centers.id"), primary_key=True
        ),
        sa.Column("element", sa.String(64), primary_key=True),
        sa.Column("rate", Exact(), nullable=False),
    )
    op.create_table(
        "routing_operations",
        sa.Column("item", sa.String(200), sa.ForeignKey("items.id"), primary_key=True),
        sa.Column("effective_from", sa.Date(), primary_key=True),
        sa.Column("operation", sa.Integer(), primary_key=True),
        sa.Column("effective_to", sa.Date()),
        sa.Column("work_center", sa.String(200), sa.ForeignKey("work_centers.id"), nullable=False),
        sa.Column("setup_hours", Exact(), nullable=False),
        sa.Column("run_hours", Exact(), nullable=False),
        sa.Column("yield", Exact(), nullable=False),
    )
    op.create_table(
        "cost_sets",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("effective", sa.Date()),
        sa.Column("released_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "cost_set_materials",
        sa.Column("cost_set", sa.String(200), sa.ForeignKey("cost_sets.name"), primary_key=True),
        sa.Column("item", sa.String(200), sa.ForeignKey("items.id"), primary_key=True),
        sa.Column("cost", Exact(), nullable=False),
    )
    op.create_table(
        "cost_set_rates",
        sa.Column("cost_set", sa.String(200), sa.ForeignKey("cost_sets.name"), primary_key=True),
        sa.Column(
            "work_center", sa.String(200), sa.ForeignKey("work_centers.id"), primary_key=True
        ),
        sa.Column("element", sa.String(64), primary_key=True),
        sa.Column("rate", Exact(), nullable=False),
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("item", sa.String(200), sa.ForeignKey("items.id"), nullable=False),
        sa.Column("quantity", Exact(), nullable=False),
        sa.Column("released", sa.Date(), nullable=False),
        sa.Column("release_event", sa.String(200), nullable=False),
        sa.Column("requirements", sa.Text(), nullable=False),
        sa.Column("completed", Exact(), nullable=False),
        sa.Column("scrapped", Exact(), nullable=False),
        sa.Column("issued", sa.Text(), nullable=False),
        sa.Column("consumed", sa.Text(), nullable=False),
        sa.Column("returned", sa.Text(), nullable=False),
        sa.Column("closed_by", sa.String(200)),
    )


def downgrade() -> None:
    for table in (
        "orders",
        "cost_set_rates",
        "cost_set_materials",
        "cost_sets",
        "routing_operations",
        "work_center_rates",
        "work_centers",
    ):
        op.drop_table(table)
    with op.batch_alter_table("bom_lines") as batch:
        batch.drop_column("operation")
        batch.drop_column("effective_to")
    with op.batch_alter_table("items") as batch:
        batch.drop_column("lot_size")
