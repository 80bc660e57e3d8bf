# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The aggregate's own result carries its population's record keys (the rows it reads already), and they are the
population the release ledger's contributors query finds by a second pass: an unchecked output's ledger entry is
the same either way."""

from __future__ import annotations

import pytest
from pyroaring import BitMap

from hygie.analysis.cellkeys import project_record_keys
from hygie.analysis.compile import compile_aggregate, output_table, population_keys
from hygie.analysis.contributors import contributor_sets, contributors_query
from hygie.analysis.engine import Limits, engine_for
from hygie.analysis.spec import AggregateSpec
from hygie.governance.models import Project
from hygie.governance.policy import Scope
from hygie.governance.views import newest_ready
from tests.portal.world import World

SPECS = [
    {"group_by": ["sex"], "measures": ["people"]},
    {"group_by": ["sex", "age_band"], "measures": ["people", "events"], "totals": True},
    {"group_by": ["age_band"], "measures": ["people"], "filters": [{"dimension": "sex", "in": ["2"]}]},
]


@pytest.mark.parametrize("raw", SPECS, ids=["sex", "sex-age-totals", "filtered"])
def test_the_aggregates_population_is_the_contributors_querys(shared_world: World, raw: dict[str, object]) -> None:
    w = shared_world
    pid = w.active_project()
    engine = engine_for(w.hub)
    spec = AggregateSpec.model_validate(raw)
    limits = Limits.from_settings(w.hub.settings)
    with w.hub.session() as session:
        project = session.get(Project, pid)
        assert project is not None
        view = newest_ready(session, pid)
        assert view is not None
        columns = {t: list(m["columns"]) for t, m in view.tables.items()}
        year = Scope.model_validate(project.scope).population.period_start.year
        keys = project_record_keys(w.hub, session, project)
        plan = compile_aggregate(spec, columns, reference_year=year, record_keys=keys, threshold=11)
        result = engine.run(project, plan.query, limits).table
        alone = contributors_query(plan, columns, reference_year=year, record_keys=keys, population_only=True)
        expected = contributor_sets(plan, engine.run(project, alone, limits).table).population
    found = population_keys(result)
    assert found is not None and len(found) == len(set(found)) > 0
    assert BitMap(found) == expected
    # and the population row is no cell of the output
    assert all("population" not in str(c.key) for c in output_table(plan, result).cells)
