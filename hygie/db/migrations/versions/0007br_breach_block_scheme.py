# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""breach blocking scheme version

Revision ID: 0007br
Revises: 0005br
Create Date: 2026-11-30 09:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007br"
down_revision = "0005br"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Version 1 indexes (one key per name initial) are rebuilt by the next refresh: scheme 1 marks them.
    with op.batch_alter_table("breach_block_state") as batch:
        batch.add_column(sa.Column("scheme", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("breach_block_state") as batch:
        batch.drop_column("scheme")
