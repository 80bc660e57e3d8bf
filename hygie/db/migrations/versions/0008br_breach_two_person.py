# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""breach: imports confirmed by a second person, two-person identity reveals

Revision ID: 0008br
Revises: 0007br
Create Date: 2026-12-02 13:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008br"
down_revision = "0007br"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("breach_incident") as batch:
        batch.add_column(sa.Column("confirmed_by", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "breach_reveal",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("incident_id", sa.Integer(), sa.ForeignKey("breach_incident.id"), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("person_index", sa.LargeBinary(length=32), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(length=100), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("shown_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_breach_reveal_incident_id", "breach_reveal", ["incident_id"])
    op.create_index("ix_breach_reveal_status", "breach_reveal", ["status"])


def downgrade() -> None:
    op.drop_index("ix_breach_reveal_status", table_name="breach_reveal")
    op.drop_index("ix_breach_reveal_incident_id", table_name="breach_reveal")
    op.drop_table("breach_reveal")
    with op.batch_alter_table("breach_incident") as batch:
        batch.drop_column("confirmed_at")
        batch.drop_column("confirmed_by")
