# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""control leads: runs of the rules over a control project's view, their leads, two-person lifting of pseudonyms

Revision ID: 0010cl
Revises: 0009oi
Create Date: 2026-12-03 07:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010cl"
down_revision = "0009oi"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "control_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("view_generation", sa.Integer(), nullable=False),
        sa.Column("run_by", sa.Integer(), nullable=False),
        sa.Column("run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("thresholds", sa.JSON(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], name=op.f("fk_control_run_project_id_project")),
        sa.ForeignKeyConstraint(["run_by"], ["account.id"], name=op.f("fk_control_run_run_by_account")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_control_run")),
    )
    with op.batch_alter_table("control_run", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_control_run_project_id"), ["project_id"], unique=False)

    op.create_table(
        "control_lead",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(length=30), nullable=False),
        sa.Column("subject_kind", sa.String(length=20), nullable=False),
        sa.Column("subject", sa.String(length=40), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], name=op.f("fk_control_lead_project_id_project")),
        sa.ForeignKeyConstraint(["run_id"], ["control_run.id"], name=op.f("fk_control_lead_run_id_control_run")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_control_lead")),
    )
    with op.batch_alter_table("control_lead", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_control_lead_project_id"), ["project_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_control_lead_run_id"), ["run_id"], unique=False)

    op.create_table(
        "control_lift",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("subject_kind", sa.String(length=20), nullable=False),
        sa.Column("subject", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("requested_by", sa.String(length=60), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=60), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("shown_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["lead_id"], ["control_lead.id"], name=op.f("fk_control_lift_lead_id_control_lead")),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], name=op.f("fk_control_lift_project_id_project")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_control_lift")),
    )
    with op.batch_alter_table("control_lift", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_control_lift_lead_id"), ["lead_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("control_lift", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_control_lift_lead_id"))
    op.drop_table("control_lift")
    with op.batch_alter_table("control_lead", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_control_lead_run_id"))
        batch_op.drop_index(batch_op.f("ix_control_lead_project_id"))
    op.drop_table("control_lead")
    with op.batch_alter_table("control_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_control_run_project_id"))
    op.drop_table("control_run")
