# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""audit log: salted leaves (a leaf format per leaf, the commitment's salt)

Leaves already in the log keep their hashes and get format 1 (the entry in clear); every leaf appended from now on
is format 2, a salted commitment (hygie/audit/leaf.py). Adding columns rewrites no row (no UPDATE: the append-only
triggers of audit_leaf stay as they are).

Revision ID: 0008au
Revises: 0004al
Create Date: 2026-12-02 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008au"
down_revision = "0004al"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (not batch mode): on SQLite a batch would copy the table and drop its triggers.
    op.add_column("audit_leaf", sa.Column("format", sa.SmallInteger(), server_default="1", nullable=False))
    op.add_column("audit_leaf", sa.Column("salt", sa.LargeBinary(length=32), nullable=True))


def downgrade() -> None:
    # DROP COLUMN in place (SQLite 3.35 and later, PostgreSQL): a batch copy would lose the triggers.
    op.execute("ALTER TABLE audit_leaf DROP COLUMN salt")
    op.execute("ALTER TABLE audit_leaf DROP COLUMN format")
