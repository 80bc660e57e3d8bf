# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Record keys of a project's people, for disclosure control (see docs/disclosure.md).

Each person of a project's view gets ``record_key(project pseudonym, secret)``, where the secret is an HMAC under
the project's own PSEUDONYM key in custody (``project-<id>-cellkey``, destroyed with the project's other keys).
The keys are computed per view generation (and per set of people excluded from it by objections since its build)
and kept in memory only, with the project's decrypted view (``ViewCache.attached``: the newest generation only,
dropped with the view, at idle expiry and at close; recomputed on every run when that cache is off); they are
registered next to the view for aggregate runs, under a name a user's SQL can never reach. They cover exactly the
people the filtered view holds.
"""

from __future__ import annotations

import pyarrow as pa
from sqlalchemy.orm import Session

from hygie.disclosure import record_keys
from hygie.governance.models import Project
from hygie.governance.views import excluded_since_build, newest_ready, open_view, project_cellkey_key
from hygie.hub import Hub
from hygie.i18n import N_
from hygie.ingest.contract import BENEFICIARY_TABLE, CARE_TABLE, PSEUDONYM_COLUMN
from hygie.keys import KeyPurpose

RKEY_TABLE = "_hygie_rkeys"
"""Auxiliary table (BEN_NIR_PSA, rkey) of aggregate runs; user SQL naming it is refused like any other table."""
_SECRET_LABEL = b"hygie/analysis/cell-key-secret/v1"


class CellKeyError(Exception):
    """The project's record keys cannot be made (its key was destroyed: the project ended)."""


def _secret(hub: Hub, project_id: int) -> bytes:
    name = project_cellkey_key(project_id)
    info = hub.custody.ensure(name, KeyPurpose.PSEUDONYM)
    if info.current_version is None:
        raise CellKeyError(N_("project {project}: its cell-key key was destroyed when it ended", project=project_id))
    return hub.custody.mac(name, [_SECRET_LABEL])[0]


def project_record_keys(hub: Hub, session: Session, project: Project) -> pa.Table:
    """(BEN_NIR_PSA, rkey) for every person of the project's newest ready view (without those who objected since
    it was built), cached per generation and set of exclusions."""
    view = newest_ready(session, project.id)
    if view is None:
        raise CellKeyError(N_("project {project} has no ready view", project=project.id))
    excluded = excluded_since_build(hub, session, project, view)
    # generation -> (people excluded since the build, their record keys); a module-wide dict kept every generation
    # of every project for the life of the process, destroyed projects included.
    kept: dict[int, tuple[frozenset[str], pa.Table]] | None = hub.view_cache.attached(project.id, "record_keys", dict)
    cached = kept.get(view.generation) if kept is not None else None
    if cached is not None and cached[0] == excluded:
        return cached[1]
    secret = _secret(hub, project.id)
    con = open_view(hub, session, project)
    try:
        sources = [t for t in (BENEFICIARY_TABLE, CARE_TABLE) if t in view.tables]
        union = " UNION ".join(f"SELECT {PSEUDONYM_COLUMN} FROM {t}" for t in sources)
        people = con.sql(union).to_arrow_table().column(0).to_pylist() if union else []
    finally:
        con.close()
    people = [p for p in people if p is not None]
    table = pa.table(
        {
            PSEUDONYM_COLUMN: pa.array(people, pa.string()),
            "rkey": pa.array(record_keys(people, secret), pa.int64()),
        }
    )
    if kept is not None:
        kept.clear()  # an older generation is never read again
        kept[view.generation] = (excluded, table)
    return table
