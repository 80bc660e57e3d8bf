# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""the citizen index by bucket of people: a generation's people of a bucket in one citizen_use row (members), as a
batch's citizens' extracts are sealed by bucket

Revision ID: 0018cb
Revises: 0017ce
Create Date: 2026-12-05 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018cb"
down_revision = "0017ce"
branch_labels = None
depends_on = None

_PERSON_KEY_LENGTH = 22


def upgrade() -> None:
    # Rows indexed before stay one per person (no members) and are still read.
    for table in ("citizen_use", "citizen_use_recent"):
        op.add_column(table, sa.Column("members", sa.LargeBinary(), nullable=True))
    # Which length of bucket a batch or generation uses, so that a read looks up that one; none for what is
    # indexed already (per person, or by buckets of an earlier rule): a read looks for every length there.
    for table in ("citizen_extract_batch", "citizen_use_generation"):
        op.add_column(table, sa.Column("bucket_chars", sa.Integer(), nullable=True))


def downgrade() -> None:
    # The code before reads only rows of one person: batches and generations indexed by bucket are taken out of
    # the index whole (rows and marker), so that it reads them the slow way (warehouse files, membership files)
    # until `hygie citizen-index rebuild` indexes them again, never answering short.
    short = f"length(person_key) < {_PERSON_KEY_LENGTH}"
    batches = (
        f"SELECT batch_id FROM citizen_extract WHERE {short} "
        f"UNION SELECT batch_id FROM citizen_extract_recent WHERE {short}"
    )
    op.execute(f"CREATE TEMPORARY TABLE bucketed_batch AS {batches}")
    for table in ("citizen_extract", "citizen_extract_recent", "citizen_extract_batch"):
        op.execute(f"DELETE FROM {table} WHERE batch_id IN (SELECT batch_id FROM bucketed_batch)")
    op.execute("DROP TABLE bucketed_batch")
    generations = (
        "SELECT project_id, generation FROM citizen_use WHERE members IS NOT NULL "
        "UNION SELECT project_id, generation FROM citizen_use_recent WHERE members IS NOT NULL"
    )
    op.execute(f"CREATE TEMPORARY TABLE bucketed_generation AS {generations}")
    for table in ("citizen_use", "citizen_use_recent", "citizen_use_generation"):
        op.execute(
            f"DELETE FROM {table} WHERE EXISTS (SELECT 1 FROM bucketed_generation b "
            f"WHERE b.project_id = {table}.project_id AND b.generation = {table}.generation)"
        )
    op.execute("DROP TABLE bucketed_generation")
    # Not in batch mode: on SQLite that copies the table (see 0016cu). SQLite drops columns in place since 3.35.
    for table in ("citizen_use", "citizen_use_recent"):
        op.execute(f"ALTER TABLE {table} DROP COLUMN members")
    for table in ("citizen_extract_batch", "citizen_use_generation"):
        op.execute(f"ALTER TABLE {table} DROP COLUMN bucket_chars")
