# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Counts that describe the hub without describing anyone."""

from __future__ import annotations

from sqlalchemy import func, select

from hygie.hub import Hub
from hygie.warehouse.catalog import BatchRow, FileRow


def collect(hub: Hub) -> dict[str, object]:
    with hub.session() as session:
        tables = dict(sorted(hub.warehouse.row_counts(session).items()))
        identities = hub.vault(session).count()
        batches = session.scalar(select(func.count()).select_from(BatchRow)) or 0
        files = session.scalar(select(func.count()).select_from(FileRow)) or 0
        size = session.scalar(select(func.coalesce(func.sum(FileRow.bytes), 0))) or 0
        months = session.scalar(select(func.count(func.distinct(FileRow.care_month)))) or 0
    return {
        "tables": tables,
        "identities": identities,
        "batches": int(batches),
        "files": int(files),
        "bytes": int(size),
        "care_months": int(months),
    }
