# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""audit alerts: alerts raised by rules over the event stream, and the evaluator's cursor

Revision ID: 0004al
Revises: 0003a
Create Date: 2026-12-02 09:00:00
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0004al"
down_revision = "0003a"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_alert",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("rule", sa.String(length=40), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("handled_by", sa.String(length=100), nullable=True),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_alert")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_audit_alert_fingerprint")),
    )
    with op.batch_alter_table("audit_alert", schema=None) as batch_op:
        for column in ("actor", "project_id", "raised_at", "rule", "status"):
            batch_op.create_index(batch_op.f(f"ix_audit_alert_{column}"), [column], unique=False)
    cursor = op.create_table(
        "audit_alert_cursor",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("last_event_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_audit_alert_cursor")),
    )
    # The row exists from the start, so concurrent evaluators lock it rather than race to insert it.
    op.bulk_insert(cursor, [{"name": "default", "last_event_id": 0, "updated_at": datetime.now(UTC)}])


def downgrade() -> None:
    op.drop_table("audit_alert_cursor")
    with op.batch_alter_table("audit_alert", schema=None) as batch_op:
        for column in ("actor", "project_id", "raised_at", "rule", "status"):
            batch_op.drop_index(batch_op.f(f"ix_audit_alert_{column}"))
    op.drop_table("audit_alert")
