# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""throttle_counter: attempt limits and sign-in backoff kept in the database (across processes and restarts)

Revision ID: 0009th
Revises: 0008au
Create Date: 2026-12-02 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009th"
down_revision = "0008au"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "throttle_counter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.String(length=40), nullable=False),
        sa.Column("key_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("window_start", sa.Float(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("until", sa.Float(), server_default="0", nullable=False),
        sa.Column("noted", sa.Boolean(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_throttle_counter")),
        sa.UniqueConstraint("bucket", "key_digest", name="uq_throttle_counter_bucket_key"),
    )
    op.create_index(op.f("ix_throttle_counter_expires_at"), "throttle_counter", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_throttle_counter_expires_at"), table_name="throttle_counter")
    op.drop_table("throttle_counter")
