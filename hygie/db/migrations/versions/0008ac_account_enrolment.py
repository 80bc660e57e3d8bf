# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""staff accounts: second person's confirmation and enrolment by the holder

Revision ID: 0008ac
Revises: 0006an
Create Date: 2026-12-02 13:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008ac"
down_revision = "0006an"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status", sa.String(length=30), server_default="active", nullable=False))
        batch_op.add_column(sa.Column("email_sealed", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("confirmed_by", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("enrolment_code_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("enrolment_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_account_enrolment_code_hash"), ["enrolment_code_hash"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_account_enrolment_code_hash"))
        for column in ("enrolled_at", "enrolment_expires_at", "enrolment_code_hash", "confirmed_at",
                       "confirmed_by", "email_sealed", "status"):  # fmt: skip
            batch_op.drop_column(column)
