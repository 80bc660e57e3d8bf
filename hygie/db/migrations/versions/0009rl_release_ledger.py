# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""release ledger: each aggregate output's population and cell contributors, sealed; the dense person index

Revision ID: 0009rl
Revises: 0008pd
Create Date: 2026-12-02 15:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009rl"
down_revision = "0008pd"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "analysis_ledger",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["analysis_job.id"], name=op.f("fk_analysis_ledger_job_id_analysis_job")),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], name=op.f("fk_analysis_ledger_project_id_project")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analysis_ledger")),
        sa.UniqueConstraint("job_id", name=op.f("uq_analysis_ledger_job_id")),
        sa.UniqueConstraint("project_id", "seq", name=op.f("uq_analysis_ledger_project_id")),
    )
    with op.batch_alter_table("analysis_ledger", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_analysis_ledger_project_id"), ["project_id"], unique=False)
    op.create_table(
        "analysis_ledger_roster",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name=op.f("fk_analysis_ledger_roster_project_id_project")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analysis_ledger_roster")),
        sa.UniqueConstraint("project_id", name=op.f("uq_analysis_ledger_roster_project_id")),
    )


def downgrade() -> None:
    op.drop_table("analysis_ledger_roster")
    with op.batch_alter_table("analysis_ledger", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_analysis_ledger_project_id"))
    op.drop_table("analysis_ledger")
