# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""improper-payment rate: samples of paid claims, their reviews, trained claim reviewers, estimates

Revision ID: 0010cs
Revises: 0009pc
Create Date: 2026-12-03 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010cs"
down_revision = "0009pc"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "control_sample",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("view_generation", sa.Integer(), nullable=False),
        sa.Column("drawn_by", sa.Integer(), nullable=False),
        sa.Column("drawn_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seed", sa.String(length=40), nullable=False),
        sa.Column("design", sa.JSON(), nullable=False),
        sa.Column("strata", sa.JSON(), nullable=False),
        sa.Column("frame_sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["drawn_by"], ["account.id"], name=op.f("fk_control_sample_drawn_by_account")),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], name=op.f("fk_control_sample_project_id_project")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_control_sample")),
    )
    with op.batch_alter_table("control_sample", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_control_sample_project_id"), ["project_id"], unique=False)

    op.create_table(
        "control_sample_claim",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sample_id", sa.Integer(), nullable=False),
        sa.Column("claim_key", sa.BigInteger(), nullable=False),
        sa.Column("stratum", sa.String(length=60), nullable=False),
        sa.Column("care_type", sa.String(length=30), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("decision", sa.String(length=10), nullable=True),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("error_amount", sa.Float(), nullable=True),
        sa.Column("reviewed_by", sa.Integer(), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["reviewed_by"], ["account.id"], name=op.f("fk_control_sample_claim_reviewed_by_account")
        ),
        sa.ForeignKeyConstraint(
            ["sample_id"], ["control_sample.id"], name=op.f("fk_control_sample_claim_sample_id_control_sample")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_control_sample_claim")),
        sa.UniqueConstraint("sample_id", "claim_key", name=op.f("uq_control_sample_claim_sample_id")),
    )
    with op.batch_alter_table("control_sample_claim", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_control_sample_claim_sample_id"), ["sample_id"], unique=False)

    op.create_table(
        "control_reviewer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("training", sa.String(length=300), nullable=False),
        sa.Column("designated_by", sa.Integer(), nullable=False),
        sa.Column("designated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"], name=op.f("fk_control_reviewer_account_id_account")),
        sa.ForeignKeyConstraint(
            ["designated_by"], ["account.id"], name=op.f("fk_control_reviewer_designated_by_account")
        ),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], name=op.f("fk_control_reviewer_project_id_project")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_control_reviewer")),
        sa.UniqueConstraint("project_id", "account_id", name=op.f("uq_control_reviewer_project_id")),
    )
    with op.batch_alter_table("control_reviewer", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_control_reviewer_project_id"), ["project_id"], unique=False)

    op.create_table(
        "control_estimate",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sample_id", sa.Integer(), nullable=False),
        sa.Column("computed_by", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewed", sa.Integer(), nullable=False),
        sa.Column("drawn", sa.Integer(), nullable=False),
        sa.Column("rate", sa.Float(), nullable=False),
        sa.Column("low", sa.Float(), nullable=False),
        sa.Column("high", sa.Float(), nullable=False),
        sa.Column("improper_amount", sa.Float(), nullable=False),
        sa.Column("amount_low", sa.Float(), nullable=False),
        sa.Column("amount_high", sa.Float(), nullable=False),
        sa.Column("total_amount", sa.Float(), nullable=False),
        sa.Column("claims", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["computed_by"], ["account.id"], name=op.f("fk_control_estimate_computed_by_account")),
        sa.ForeignKeyConstraint(
            ["sample_id"], ["control_sample.id"], name=op.f("fk_control_estimate_sample_id_control_sample")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_control_estimate")),
    )
    with op.batch_alter_table("control_estimate", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_control_estimate_sample_id"), ["sample_id"], unique=False)


def downgrade() -> None:
    for table, column in (
        ("control_estimate", "sample_id"),
        ("control_reviewer", "project_id"),
        ("control_sample_claim", "sample_id"),
        ("control_sample", "project_id"),
    ):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{table}_{column}"))
        op.drop_table(table)
