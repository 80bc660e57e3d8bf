# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Code lists computed once per view generation give the same cells as lists computed inside the query, are
reused, and are computed again when the view's people change (an objection since the build)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from hygie.analysis import codelists
from hygie.analysis.compile import CODES_TABLE, compile_aggregate
from hygie.analysis.engine import Limits, engine_for
from hygie.analysis.spec import AggregateSpec
from tests.analysis.viewparts import view_parts
from tests.portal.world import World

SPEC = {"group_by": ["sex", "age_band"], "measures": ["people", "events"], "totals": True}


def _rows(table: pa.Table) -> list[tuple[Any, ...]]:
    """Comparable rows: a list (the population's record keys), in no particular order, is sorted."""
    return sorted(tuple(str(sorted(v) if isinstance(v, list) else v) for v in r.values()) for r in table.to_pylist())


def test_code_lists_kept_per_view_give_the_same_cells_and_are_reused(
    shared_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = shared_world
    pid = w.active_project()
    engine = engine_for(w.hub)
    spec = AggregateSpec.model_validate(SPEC)
    with w.hub.session() as session:
        v = view_parts(w.hub, session, pid)
        project, view, columns, year, keys = v.project, v.view, v.columns, v.year, v.keys
        inline = compile_aggregate(spec, columns, reference_year=year, record_keys=keys, threshold=11)
        lists = codelists.code_lists(w.hub, session, engine, project, view, spec, columns,
                                     reference_year=year, threshold=11)  # fmt: skip
        assert len(lists) == 2 and all(t.num_rows > 0 for t in lists.values())
        kept = compile_aggregate(spec, columns, reference_year=year, record_keys=keys, threshold=11, code_lists=lists)
        sql = kept.query.ast.sql(dialect="duckdb")
        assert f"{CODES_TABLE}0" in sql and f"{CODES_TABLE}1" in sql and "HAVING" not in sql.upper()
        assert "HAVING" in inline.query.ast.sql(dialect="duckdb").upper()  # computed over the whole view there
        limits = Limits.from_settings(w.hub.settings)
        with_lists, without = (engine.run(project, p.query, limits).table for p in (kept, inline))
        assert _rows(with_lists) == _rows(without)

        # Reused: no run at all the second time.
        def no_run(*_: Any, **__: Any) -> Any:
            raise AssertionError("the code lists were computed again")

        with monkeypatch.context() as m:
            m.setattr(engine, "run", no_run)
            again = codelists.code_lists(w.hub, session, engine, project, view, spec, columns,
                                         reference_year=year, threshold=11)  # fmt: skip
        assert again.keys() == lists.keys()
        # Another threshold is another list; people who objected since the build make the kept lists stale.
        other = codelists.code_lists(w.hub, session, engine, project, view, spec, columns,
                                     reference_year=year, threshold=12)  # fmt: skip
        assert other.keys().isdisjoint(lists.keys())
        ran: list[int] = []
        real_run = engine.run

        def counted(*args: Any, **kwargs: Any) -> Any:
            ran.append(1)
            return real_run(*args, **kwargs)

        with monkeypatch.context() as m:
            m.setattr(codelists, "excluded_since_build", lambda *_: frozenset({"someone who objected"}))
            m.setattr(engine, "run", counted)
            codelists.code_lists(w.hub, session, engine, project, view, spec, columns,
                                 reference_year=year, threshold=11)  # fmt: skip
        assert ran == [1]
