# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""audit cosignatures: witnesses' cosignatures of checkpoints (C2SP tlog-cosignature), append-only

Revision ID: 0009wt
Revises: 0006ci
Create Date: 2026-12-02 16:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009wt"
down_revision = "0006ci"
branch_labels = None
depends_on = None

_TABLE = "audit_cosignature"


def upgrade() -> None:
    op.create_table(
        _TABLE,
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("checkpoint_id", sa.Integer(), nullable=False),
        sa.Column("witness", sa.String(length=200), nullable=False),
        sa.Column("key_id", sa.LargeBinary(length=4), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_cosignature")),
    )
    with op.batch_alter_table(_TABLE, schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_cosignature_checkpoint_id"), ["checkpoint_id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        # hygie_append_only() comes from migration 0002, an ancestor of this one.
        op.execute(
            f"""CREATE TRIGGER {_TABLE}_append_only BEFORE UPDATE OR DELETE ON {_TABLE}
                FOR EACH ROW EXECUTE FUNCTION hygie_append_only()"""
        )
        op.execute(
            f"""CREATE TRIGGER {_TABLE}_no_truncate BEFORE TRUNCATE ON {_TABLE}
                FOR EACH STATEMENT EXECUTE FUNCTION hygie_append_only()"""
        )
    else:
        op.execute(
            f"""CREATE TRIGGER {_TABLE}_no_update BEFORE UPDATE ON {_TABLE}
                BEGIN SELECT RAISE(ABORT, '{_TABLE} is append-only'); END"""
        )
        op.execute(
            f"""CREATE TRIGGER {_TABLE}_no_delete BEFORE DELETE ON {_TABLE}
                BEGIN SELECT RAISE(ABORT, '{_TABLE} is append-only'); END"""
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {_TABLE}_append_only ON {_TABLE}")
        op.execute(f"DROP TRIGGER IF EXISTS {_TABLE}_no_truncate ON {_TABLE}")
    with op.batch_alter_table(_TABLE, schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_cosignature_checkpoint_id"))
    op.drop_table(_TABLE)
