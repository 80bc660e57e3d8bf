# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""the hub pseudonym key can be rotated: which version the stored data uses, which version each view generation
was built through, and the files a rotation has re-written

Revision ID: 0013hp
Revises: 0012po
Create Date: 2026-12-04 06:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013hp"
down_revision = "0012po"
branch_labels = None
depends_on = None


def upgrade() -> None:
    state = op.create_table(
        "hub_pseudonym_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("active_version", sa.Integer(), nullable=False),
        sa.Column("target_version", sa.Integer(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hub_pseudonym_state")),
    )
    # Every hub so far keyed its data with the key's first version: it could not be rotated.
    op.bulk_insert(state, [{"id": 1, "active_version": 1, "target_version": None, "changed_at": None}])
    with op.batch_alter_table("project_view", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pseudonym_version", sa.Integer(), server_default="1", nullable=False))
    op.create_table(
        "pseudonym_rotation_file",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target_version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("ref_id", sa.Integer(), nullable=False),
        sa.Column("old_path", sa.String(length=500), nullable=False),
        sa.Column("new_path", sa.String(length=500), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pseudonym_rotation_file")),
        sa.UniqueConstraint("target_version", "kind", "ref_id", name=op.f("uq_pseudonym_rotation_file_target_version")),
    )


def downgrade() -> None:
    op.drop_table("pseudonym_rotation_file")
    with op.batch_alter_table("project_view", schema=None) as batch_op:
        batch_op.drop_column("pseudonym_version")
    op.drop_table("hub_pseudonym_state")
