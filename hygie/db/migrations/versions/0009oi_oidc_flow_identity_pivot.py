# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""oidc_flow (citizens' identity provider logins) and identity_pivot (keyed pivot index of the vault)

Revision ID: 0009oi
Revises: 0008si
Create Date: 2026-12-02 16:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009oi"
down_revision = "0008si"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_pivot",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pivot", sa.LargeBinary(length=32), nullable=False),
        sa.Column("person_index", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_pivot")),
    )
    op.create_index(op.f("ix_identity_pivot_pivot"), "identity_pivot", ["pivot"], unique=False)
    op.create_table(
        "identity_pivot_mark",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_record_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_pivot_mark")),
    )
    op.create_table(
        "oidc_flow",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("binding_hash", sa.String(length=64), nullable=False),
        sa.Column("nonce_hash", sa.String(length=64), nullable=False),
        sa.Column("code_verifier", sa.String(length=128), nullable=True),
        sa.Column("purpose", sa.String(length=20), nullable=False),
        sa.Column("acr_wanted", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("consumed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("vouched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acr", sa.String(length=40), nullable=True),
        sa.Column("person_index", sa.LargeBinary(length=32), nullable=True),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"], name=op.f("fk_oidc_flow_account_id_account")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oidc_flow")),
        sa.UniqueConstraint("state_hash", name=op.f("uq_oidc_flow_state_hash")),
    )
    op.create_index(op.f("ix_oidc_flow_account_id"), "oidc_flow", ["account_id"], unique=False)
    op.create_index(op.f("ix_oidc_flow_binding_hash"), "oidc_flow", ["binding_hash"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_oidc_flow_binding_hash"), table_name="oidc_flow")
    op.drop_index(op.f("ix_oidc_flow_account_id"), table_name="oidc_flow")
    op.drop_table("oidc_flow")
    op.drop_table("identity_pivot_mark")
    op.drop_index(op.f("ix_identity_pivot_pivot"), table_name="identity_pivot")
    op.drop_table("identity_pivot")
