# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""privacy budgets: a project's release mode and budget, the budget ledger (project and population budgets,
one charge per job)

Revision ID: 0010dp
Revises: 0009rl
Create Date: 2026-12-02 19:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010dp"
down_revision = "0009rl"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.add_column(sa.Column("release_mode", sa.String(length=10), server_default="sdc", nullable=False))
        batch_op.add_column(sa.Column("privacy_budget", sa.Float(), nullable=True))
    op.create_table(
        "privacy_budget",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("purpose", sa.String(length=40), nullable=True),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("spent", sa.Float(), nullable=False),
        sa.Column("reserved", sa.Float(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], name=op.f("fk_privacy_budget_project_id_project")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_budget")),
        sa.UniqueConstraint("name", name=op.f("uq_privacy_budget_name")),
        sa.UniqueConstraint("project_id", name=op.f("uq_privacy_budget_project_id")),
    )
    op.create_table(
        "privacy_charge",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("project_budget_id", sa.Integer(), nullable=False),
        sa.Column("population_budget_id", sa.Integer(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("reserved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["population_budget_id"],
            ["privacy_budget.id"],
            name=op.f("fk_privacy_charge_population_budget_id_privacy_budget"),
        ),
        sa.ForeignKeyConstraint(
            ["project_budget_id"],
            ["privacy_budget.id"],
            name=op.f("fk_privacy_charge_project_budget_id_privacy_budget"),
        ),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], name=op.f("fk_privacy_charge_project_id_project")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_charge")),
        sa.UniqueConstraint("job_id", name=op.f("uq_privacy_charge_job_id")),
    )
    with op.batch_alter_table("privacy_charge", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_privacy_charge_project_id"), ["project_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("privacy_charge", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_privacy_charge_project_id"))
    op.drop_table("privacy_charge")
    op.drop_table("privacy_budget")
    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.drop_column("privacy_budget")
        batch_op.drop_column("release_mode")
