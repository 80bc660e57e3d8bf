# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""a release's findings keep their message identifiers (msgid and parameters, one per finding), so the airlock's
pages say them in French from the catalogue

Revision ID: 0015fm
Revises: 0014jq
Create Date: 2026-12-04 11:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015fm"
down_revision = "0014jq"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Releases made before keep no identifiers: their findings are shown as the English text they stored.
    with op.batch_alter_table("analysis_release", schema=None) as batch_op:
        batch_op.add_column(sa.Column("findings_messages", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("analysis_release", schema=None) as batch_op:
        batch_op.drop_column("findings_messages")
