# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Code lists of a view, computed once and kept in memory for the life of the view's generation.

An aggregate lists each code of a dimension held by at least the threshold of distinct people of the *whole view*
(the others fold into ``OTHER``: see :meth:`hygie.analysis.compile._Compiler.codes`). Computed inside the query, a
list costs a pass over the view's joined rows, twice per dimension (the fold and the grid's rows): more than the
aggregate itself on a large view. The list
depends only on the view's rows (its generation, less the people who objected since it was built), the dimension
and the threshold, so it is computed once, in the sandbox like any run, and read from a small table afterwards.

Kept in this process's memory only, never on disk: a list is the grid every aggregate over the dimension shows
anyway (each listed code is a row of the output, suppressed or not), nothing about a person. Invalidated with the
view (another generation) and whenever the set of people excluded since the build changes (an objection).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.orm import Session
from sqlglot import exp

from hygie.analysis.compile import DRUG_TABLE, DRUGS_TABLE, _Compiler
from hygie.analysis.engine import CompiledQuery, Engine, Limits
from hygie.analysis.spec import AggregateSpec
from hygie.governance.models import Project, ProjectView
from hygie.governance.views import _drug_atc, excluded_since_build
from hygie.hub import Hub

MAX_KEPT = 512
"""Code lists kept per process (the oldest go first): a few per dimension and view in use."""

_cache: OrderedDict[tuple[str, int, int, str], tuple[frozenset[str], pa.Table]] = OrderedDict()
"""(data dir, project, view generation, code list's query) -> (people excluded since the build, the codes)."""
_lock = threading.Lock()


def code_lists(
    hub: Hub,
    session: Session,
    engine: Engine,
    project: Project,
    view: ProjectView,
    spec: AggregateSpec,
    columns: Mapping[str, list[str]],
    *,
    reference_year: int,
    threshold: int,
) -> dict[str, pa.Table]:
    """The code list of each of ``spec``'s dimensions on ``view``, by :meth:`_Compiler.code_key`; the missing ones
    computed in one sandboxed run (raises :class:`hygie.analysis.engine.QueryStopped` like any run)."""
    if not spec.group_by:
        return {}
    compiler = _Compiler(spec, columns, reference_year, threshold)
    keys = [compiler.code_key(i) for i in range(len(spec.group_by))]
    excluded = excluded_since_build(hub, session, project, view)
    prefix = (str(hub.settings.data_dir), project.id, view.generation)
    found: dict[str, pa.Table] = {}
    with _lock:
        for key in keys:
            kept = _cache.get((*prefix, key))
            if kept is not None and kept[0] == excluded:
                found[key] = kept[1]
                _cache.move_to_end((*prefix, key))
    missing = [i for i, key in enumerate(keys) if key not in found]
    if not missing:
        return found
    parts = [
        exp.select(exp.alias_(exp.Literal.number(i), "dim"), exp.column("code")).from_(
            exp.Subquery(this=compiler.code_query(i), alias=exp.TableAlias(this=exp.to_identifier(f"c{i}")))
        )
        for i in missing
    ]
    union: exp.Expr = parts[0]
    for part in parts[1:]:
        union = exp.union(union, part, distinct=False)
    auxiliary: dict[str, pa.Table] = {DRUGS_TABLE: _drug_atc()} if DRUG_TABLE in compiler.tables else {}
    query = CompiledQuery(union, frozenset(compiler.tables), auxiliary, joins_as_written=True)
    run = engine.run(project, query, Limits.from_settings(hub.settings))
    dims = run.table.column("dim")
    for i in missing:
        codes = run.table.filter(pc.equal(dims, i)).select(["code"]).cast(pa.schema([("code", pa.string())]))
        found[keys[i]] = codes
    with _lock:
        for i in missing:
            _cache[(*prefix, keys[i])] = (excluded, found[keys[i]])
            _cache.move_to_end((*prefix, keys[i]))
        while len(_cache) > MAX_KEPT:
            _cache.popitem(last=False)
    return found
