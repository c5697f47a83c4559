"""Issue 7: journal lines summarised per policy (``journal_detail``: event, day or period),
the summarised events keeping their own entries and movements and naming their summary entry,
for drill-down and reversal.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("book_settings") as batch:
        batch.add_column(
            sa.Column("journal_detail", sa.String(16), nullable=False, server_default="event")
        )
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("detail", sa.Text))
        batch.add_column(sa.Column("summary_entry", sa.Integer))
        batch.create_index("ix_events_summary_entry", ["summary_entry"])


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_index("ix_events_summary_entry")
        batch.drop_column("summary_entry")
        batch.drop_column("detail")
    with op.batch_alter_table("book_settings") as batch:
        batch.drop_column("journal_detail")
