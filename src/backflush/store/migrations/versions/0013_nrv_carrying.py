"""What the books carried of a unit when a close measured it against its NRV: under US GAAP
the write-down follows what the books carry, not the whole standard (a standard held off the
books moves nothing). Findings recorded before keep NULL: the next close works it out.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backflush.store.schema import Exact

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nrv_writedowns") as batch:
        batch.add_column(sa.Column("carrying", Exact()))


def downgrade() -> None:
    with op.batch_alter_table("nrv_writedowns") as batch:
        batch.drop_column("carrying")
