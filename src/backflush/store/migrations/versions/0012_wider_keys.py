"""Room for the longest keys the inputs allow: a journal element is a conversion element (up
to 64 characters) behind ``variance:conversion:`` when a close prorates it into stock, and a
period statistic names a work center (up to 200) and an element. PostgreSQL refused both
(``value too long for type character varying(64)``); SQLite never checked the length.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backflush.store.schema import ELEMENT, STATISTIC

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

#: The columns widened, with their new length.
WIDER = (
    *(
        (table, "element", ELEMENT)
        for table in (
            "journal_lines",
            "balances",
            "period_activity",
            "unsold_conversion",
            "item_activity",
        )
    ),
    ("period_statistics", "name", STATISTIC),
)


def upgrade() -> None:
    # PostgreSQL widens a varchar in its catalogue alone; SQLite's batch mode copies the table
    # (its declared length is all that changes: SQLite stores text of any length).
    for table, column, length in WIDER:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                column,
                existing_type=sa.String(64),
                type_=sa.String(length),
                existing_nullable=False,
            )


def downgrade() -> None:
    """Back to 64 characters (PostgreSQL refuses while a longer key is stored)."""
    for table, column, length in WIDER:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                column,
                existing_type=sa.String(length),
                type_=sa.String(64),
                existing_nullable=False,
            )
