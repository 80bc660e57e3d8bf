# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The attacker's own tool, run before each release: linear programs over all of a project's releases.

Each release protects its suppressed cells against its own margins (hypercubes, ``complementary``). An attacker who
holds several releases combines them: the same people fall in cells of different tables, so margins of one table
bound cells of another. This audit solves what that attacker solves.

Variables: the sizes of the *atoms*, the groups of people that lie in exactly the same set of cells across every
release of the project plus the candidate (computed by the platform from the exact contributor sets of its
ledger). Every cell is the sum of its atoms. The attacker's real knowledge is weaker than this (they do not know
which atoms exist), so the intervals computed here are never wider than theirs: the audit errs on the safe side.

Constraints, per cell, what the published value tells (``published_interval``); atoms are non-negative. For every
target (a suppressed cell with fewer than ``threshold`` people, in any release), the minimum and maximum of its
count; a target left an interval narrower than the protection width is *narrowed*. Bounds are rounded inwards to
integers (counts are integers); the integer program could narrow further than its relaxation: the attacker of
the issue used linear programming, and so do we (a stated limit).

Pure: no database, no web; scipy (HiGHS) is imported when an audit runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hygie.i18n import N_

EPSILON = 1e-6


def published_interval(value: int | None, base: int) -> tuple[float, float]:
    """What a published people count tells the attacker about the true count ``n`` (``None``: suppressed).

    Counts are released by keyed random rounding (``StickyRounding``): ``r = base * floor((n + u) / base)`` with an
    offset ``u`` in ``0..base-1`` drawn from the cell's smallest record key, an HMAC the attacker cannot compute.
    For a given ``u``, ``n`` lies in ``[r - u, r - u + base - 1]``; over the unknown ``u`` that is
    ``[r - base + 1, r + base - 1]``, and that is all the attacker knows. A released 0 is an empty cell (0 is
    never a rounding of a non-empty one: counts under the threshold are suppressed), so exactly 0. A suppressed
    cell is given at least one person: the audit only constrains cells that hold someone, and assumes the attacker
    knows which (the issue's attack used "rows known to be non-empty"; with a full grid they know less, so the audit
    errs on the safe side); nothing bounds it above but the other constraints."""
    if value is None:
        return (1.0, math.inf)
    if value == 0:
        return (0.0, 0.0)
    return (float(max(1, value - base + 1)), float(value + base - 1))


@dataclass(frozen=True)
class AuditCell:
    ref: str
    """How findings name the cell: release and key (never its count)."""
    atoms: tuple[int, ...]
    """Indices of the atoms that make up the cell."""
    low: float
    high: float
    """The attacker's knowledge of its count; ``published_interval``."""
    target: bool = False
    """A suppressed cell with fewer than the threshold of people: its interval must stay wide."""
    candidate: bool = False
    """Part of the release being decided (its constraints are the new ones)."""


@dataclass(frozen=True)
class Narrowed:
    ref: str
    low: int
    high: int
    already: bool
    """Already that narrow without the candidate (earlier releases did it): recorded, not the candidate's fault."""


@dataclass
class AuditResult:
    checked: int = 0
    """Targets bounded."""
    narrowed: list[Narrowed] = field(default_factory=list)
    too_large: str | None = None
    """Why the audit was not run (a bound was exceeded), a catalogued message (``hygie.i18n``): the release must then
    go to output checkers."""
    infeasible: bool = False
    """The published values contradict the contributor sets (a platform inconsistency), or the solver gave up:
    the audit cannot conclude, checkers must look."""
    lps: int = 0

    @property
    def refuses(self) -> bool:
        return any(not n.already for n in self.narrowed)


def audit(
    cells: Sequence[AuditCell],
    atoms: int,
    width: int,
    *,
    max_atoms: int,
    max_cells: int,
    max_targets: int,
) -> AuditResult:
    """Bounds every target; see the module docstring."""
    targets = [i for i, c in enumerate(cells) if c.target]
    result = AuditResult()
    if not targets:
        return result
    if atoms > max_atoms:
        result.too_large = N_(
            "{atoms} groups of people across the project's releases, more than {limit}", atoms=atoms, limit=max_atoms
        )
    elif len(cells) > max_cells:
        result.too_large = N_(
            "{cells} cells across the project's releases, more than {limit}", cells=len(cells), limit=max_cells
        )
    elif len(targets) > max_targets:
        result.too_large = N_(
            "{targets} small suppressed cells to bound, more than {limit}", targets=len(targets), limit=max_targets
        )
    if result.too_large:
        return result

    import numpy as np
    from scipy.optimize import linprog  # type: ignore[import-untyped]
    from scipy.sparse import csr_matrix  # type: ignore[import-untyped]

    def system(include_candidate: bool) -> tuple[Any, list[float]]:
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        rhs: list[float] = []
        r = 0
        for c in cells:
            if c.candidate and not include_candidate:
                continue
            for sign, bound in ((-1.0, -c.low), (1.0, c.high)):
                if math.isinf(bound) or (sign < 0 and bound == 0):
                    continue  # no upper bound; a lower bound of 0 is non-negativity
                rows += [r] * len(c.atoms)
                cols += list(c.atoms)
                vals += [sign] * len(c.atoms)
                rhs.append(bound)
                r += 1
        return csr_matrix((vals, (rows, cols)), shape=(r, atoms)), rhs

    def solve(objective: Any, a_ub: Any, b_ub: list[float], cap: float | None = None) -> tuple[int, Any]:
        """Minimises ``objective`` (atoms at most ``cap`` when given): (scipy status, solution or None)."""
        result.lps += 1
        lp = linprog(objective, A_ub=a_ub, b_ub=b_ub, bounds=(0, cap), method="highs")
        return int(lp.status), (lp.x if lp.status == 0 else None)

    members = csr_matrix(
        ([1.0] * sum(len(cells[i].atoms) for i in targets),
         ([k for k, i in enumerate(targets) for _ in cells[i].atoms], [a for i in targets for a in cells[i].atoms])),
        shape=(len(targets), atoms),
    )  # fmt: skip
    a_ub, b_ub = system(True)
    # Feasible points certify width without solving: if two of them give a target values at least ``width``
    # apart, the attacker's interval is at least that wide. Every solved program adds its optimum to the pool;
    # a few directions seed it. Only targets the pool cannot certify get their own two programs (exact bounds).
    rng = np.random.default_rng(0)
    seeds = [members.sum(axis=0).A1, -members.sum(axis=0).A1]
    seeds += [members.T @ rng.choice([-1.0, 1.0], size=len(targets)) for _ in range(2)]
    low_seen = np.full(len(targets), np.inf)
    high_seen = np.full(len(targets), -np.inf)

    def add(x: Any) -> None:
        values = members @ x
        np.minimum(low_seen, values, out=low_seen)
        np.maximum(high_seen, values, out=high_seen)

    cap = 10.0 * (sum(c.low for c in cells) + 1)  # keeps seeds bounded; their optima stay feasible points
    for objective in seeds:
        status, x = solve(objective, a_ub, b_ub, cap)
        if status not in (0, 3):
            result.infeasible = True
            return result
        if x is not None:
            add(x)
    before: tuple[Any, list[float]] | None = None
    for k, i in enumerate(targets):
        result.checked += 1
        if math.floor(high_seen[k] + EPSILON) - math.ceil(low_seen[k] - EPSILON) >= width:
            continue
        objective = members[k].toarray().ravel()
        status, x = solve(-objective, a_ub, b_ub)  # the maximum first: the pool's low is an upper bound on the min
        if status == 3:
            continue  # unbounded above: as wide as can be
        if x is not None:
            add(x)
            if math.floor(high_seen[k] + EPSILON) - math.ceil(low_seen[k] - EPSILON) >= width:
                continue
        found = _bounds(solve, objective, a_ub, b_ub, add)
        if found is None:
            result.infeasible = True
            return result
        low, high = found
        if high - low >= width:
            continue
        already = False
        if not cells[i].candidate:
            before = before or system(False)
            earlier = _bounds(solve, members[k].toarray().ravel(), *before, None)
            already = earlier is not None and earlier[1] - earlier[0] < width
        result.narrowed.append(Narrowed(cells[i].ref, int(low), int(high), already))
    return result


def _bounds(solve: Any, objective: Any, a_ub: Any, b_ub: list[float], add: Any) -> tuple[float, float] | None:
    """Integer-rounded [min, max] of ``objective`` (max may be inf); None when infeasible."""
    out: list[float] = []
    for sign in (1.0, -1.0):
        status, x = solve(sign * objective, a_ub, b_ub)
        if status == 3 and sign < 0:
            out.append(math.inf)  # unbounded above (a minimum of counts never is)
            continue
        if x is None:
            return None  # infeasible, or the solver gave up: the audit cannot conclude
        out.append(float(objective @ x))
        if add is not None:
            add(x)
    low, high = out
    return float(math.ceil(low - EPSILON)), (high if math.isinf(high) else float(math.floor(high + EPSILON)))
