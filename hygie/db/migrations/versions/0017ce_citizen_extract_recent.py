# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""a batch's citizen extracts are written batch-first (citizen_extract_recent), then merged into the person-first
citizen_extract in the background, several batches at once

Revision ID: 0017ce
Revises: 0016cu
Create Date: 2026-12-04 23:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017ce"
down_revision = "0016cu"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batches indexed before are in citizen_extract already: merged (a batch wrongly marked unmerged is still
    # found, in citizen_extract; one wrongly marked merged would not be).
    with op.batch_alter_table("citizen_extract_batch", schema=None) as batch_op:
        batch_op.add_column(sa.Column("merged", sa.Boolean(), server_default="0", nullable=False))
    op.execute("UPDATE citizen_extract_batch SET merged = TRUE")
    op.create_table(
        "citizen_extract_recent",
        sa.Column("batch_id", sa.String(length=200), nullable=False),
        sa.Column("person_key", sa.String(length=22), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["citizen_extract_batch.batch_id"],
            name=op.f("fk_citizen_extract_recent_batch_id_citizen_extract_batch"),
        ),
        sa.PrimaryKeyConstraint("batch_id", "person_key", name=op.f("pk_citizen_extract_recent")),
    )


def downgrade() -> None:
    # Unmerged batches would be lost from the index: they are merged first.
    op.execute(
        "INSERT INTO citizen_extract (person_key, batch_id, payload) "
        "SELECT person_key, batch_id, payload FROM citizen_extract_recent ORDER BY person_key"
    )
    op.drop_table("citizen_extract_recent")
    # Not in batch mode: on SQLite that copies the table, and dropping the old copy fails while rows of other
    # tables reference it (foreign keys are enforced). SQLite has dropped columns in place since 3.35.
    op.execute("ALTER TABLE citizen_extract_batch DROP COLUMN merged")
