# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""who a view generation includes is written generation-first (citizen_use_recent), then merged into the
person-first citizen_use in the background, several generations at once

Revision ID: 0016cu
Revises: 0015fm
Create Date: 2026-12-04 22:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016cu"
down_revision = "0015fm"
branch_labels = None
depends_on = "0006ci"  # the citizen index's tables


def upgrade() -> None:
    # Generations indexed before are in citizen_use already: merged. New ones are written unmerged (a generation
    # wrongly marked unmerged is still found, in citizen_use; one wrongly marked merged would not be).
    with op.batch_alter_table("citizen_use_generation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("merged", sa.Boolean(), server_default="0", nullable=False))
    op.execute("UPDATE citizen_use_generation SET merged = TRUE")
    op.create_table(
        "citizen_use_recent",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("person_key", sa.String(length=22), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id", "generation"],
            ["citizen_use_generation.project_id", "citizen_use_generation.generation"],
            name=op.f("fk_citizen_use_recent_project_id_citizen_use_generation"),
        ),
        sa.PrimaryKeyConstraint("project_id", "generation", "person_key", name=op.f("pk_citizen_use_recent")),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    # Unmerged generations would be lost from the index: they are merged first.
    op.execute(
        "INSERT INTO citizen_use (person_key, project_id, generation) "
        "SELECT person_key, project_id, generation FROM citizen_use_recent ORDER BY person_key"
    )
    op.drop_table("citizen_use_recent")
    # Not in batch mode: on SQLite that copies the table, and dropping the old copy fails while rows of other
    # tables reference it (foreign keys are enforced). SQLite has dropped columns in place since 3.35.
    op.execute("ALTER TABLE citizen_use_generation DROP COLUMN merged")
