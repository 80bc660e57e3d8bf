# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""What compiling an aggregate needs of a project's newest view, read as the service reads it."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
from sqlalchemy.orm import Session

from hygie.analysis.cellkeys import project_record_keys
from hygie.governance.models import Project, ProjectView
from hygie.governance.policy import Scope
from hygie.governance.views import newest_ready
from hygie.hub import Hub


@dataclass(frozen=True)
class ViewParts:
    project: Project
    view: ProjectView
    columns: dict[str, list[str]]
    year: int
    keys: pa.Table


def view_parts(hub: Hub, session: Session, project_id: int) -> ViewParts:
    project = session.get(Project, project_id)
    assert project is not None
    view = newest_ready(session, project_id)
    assert view is not None
    columns = {t: list(m["columns"]) for t, m in view.tables.items()}
    year = Scope.model_validate(project.scope).population.period_start.year
    return ViewParts(project, view, columns, year, project_record_keys(hub, session, project))
