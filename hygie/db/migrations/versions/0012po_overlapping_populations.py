# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""a DP release is charged against every population budget that may share people with its own (a shifted period
or another purpose no longer opens a fresh budget over the same people): population budgets keep their criteria,
charges the other budgets they hold

Revision ID: 0012po
Revises: 0011am
Create Date: 2026-12-04 03:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012po"
down_revision = "0011am"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("privacy_budget", schema=None) as batch_op:
        batch_op.add_column(sa.Column("criteria", sa.JSON(), nullable=True))
    with op.batch_alter_table("privacy_charge", schema=None) as batch_op:
        batch_op.add_column(sa.Column("other_budget_ids", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("privacy_charge", schema=None) as batch_op:
        batch_op.drop_column("other_budget_ids")
    with op.batch_alter_table("privacy_budget", schema=None) as batch_op:
        batch_op.drop_column("criteria")
