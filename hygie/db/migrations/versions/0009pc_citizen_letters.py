# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""citizen letters by post (sealed outbox, one-time codes), citizens' devices, sealed notice contact details

Revision ID: 0009pc
Revises: 0008ac
Create Date: 2026-12-02 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009pc"
down_revision = "0008ac"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "citizen_letter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_index", sa.LargeBinary(length=32), nullable=False),
        sa.Column("purpose", sa.String(length=20), nullable=False),
        sa.Column("code_digest", sa.LargeBinary(length=32), nullable=True),
        sa.Column("notice_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("nonce", sa.LargeBinary(length=12), nullable=True),
        sa.Column("sealed", sa.LargeBinary(), nullable=True),
        sa.Column("printed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("printed_by", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_citizen_letter")),
    )
    with op.batch_alter_table("citizen_letter", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_citizen_letter_person_index"), ["person_index"], unique=False)
        batch_op.create_index(batch_op.f("ix_citizen_letter_code_digest"), ["code_digest"], unique=False)

    op.create_table(
        "citizen_device",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("via", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"], name=op.f("fk_citizen_device_account_id_account")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_citizen_device")),
        sa.UniqueConstraint("account_id", "digest", name="uq_citizen_device"),
    )
    with op.batch_alter_table("citizen_device", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_citizen_device_account_id"), ["account_id"], unique=False)

    op.create_table(
        "citizen_contact",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_index", sa.LargeBinary(length=32), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(length=12), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("via", sa.String(length=20), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_citizen_contact")),
    )
    with op.batch_alter_table("citizen_contact", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_citizen_contact_person_index"), ["person_index"], unique=False)


def downgrade() -> None:
    for table, indexes in (
        ("citizen_contact", ["ix_citizen_contact_person_index"]),
        ("citizen_device", ["ix_citizen_device_account_id"]),
        ("citizen_letter", ["ix_citizen_letter_code_digest", "ix_citizen_letter_person_index"]),
    ):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for index in indexes:
                batch_op.drop_index(batch_op.f(index))
        op.drop_table(table)
