# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""analysis jobs are a queue in the database: when a job was checked and became ready to run, so that any server
process over the hub may claim it

Revision ID: 0014jq
Revises: 0013hp
Create Date: 2026-12-04 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014jq"
down_revision = "0013hp"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Jobs left queued before this revision have no time of readiness: the next server start fails them as
    # orphans, as it always did (their checks ran in a process that is gone).
    with op.batch_alter_table("analysis_job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_analysis_job_queued_at"), ["queued_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("analysis_job", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_analysis_job_queued_at"))
        batch_op.drop_column("queued_at")
