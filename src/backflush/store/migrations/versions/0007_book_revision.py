"""Issue 6, throughput: a revision of the whole book, bumped by every write transaction, so
a process may keep its book in memory between writes while no other writer wrote.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("book_settings") as batch:
        batch.add_column(
            sa.Column("revision", sa.BigInteger, nullable=False, server_default=sa.text("0"))
        )


def downgrade() -> None:
    with op.batch_alter_table("book_settings") as batch:
        batch.drop_column("revision")
