"""Who changed the standards, and when: a log of each write of master data and each release
of a cost set (a release revalues stock, so an auditor asks who made it). Changes made before
this revision were not logged.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "master_changes",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(200)),
        sa.Column("change", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("master_changes")
