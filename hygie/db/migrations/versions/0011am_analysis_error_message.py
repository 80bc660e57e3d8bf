# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""analysis errors keep their message identifier (msgid and parameters), so a page says them in French from the
catalogue

Revision ID: 0011am
Revises: 0010dp
Create Date: 2026-12-03 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011am"
down_revision = "0010dp"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("analysis_job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error_message", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("analysis_job", schema=None) as batch_op:
        batch_op.drop_column("error_message")
