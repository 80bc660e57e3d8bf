# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""project decisions bound to a scope hash, voided on change

Revision ID: 0008pd
Revises: 0006an
Create Date: 2026-12-02 13:20:00.000000

Decisions recorded before this revision have no hash: they no longer count towards activating a project (a
project awaiting review when this runs needs its approvals again).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008pd"
down_revision = "0006an"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("project_decision", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scope_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("voided_reason", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("project_decision", schema=None) as batch_op:
        batch_op.drop_column("voided_reason")
        batch_op.drop_column("voided_at")
        batch_op.drop_column("scope_hash")
