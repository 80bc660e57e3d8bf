# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""An attacker who holds a released table and its margins and tries to pin each suppressed cell.

The attacker knows every published cell exactly (the worst case: we ignore the rounding the platform applies), that
counts are non-negative and that each margin is the sum of the cells under it. For each suppressed cell it solves
two linear programs (min and max of that cell) with an exact simplex over fractions, written here because scipy is
not available. Margin constraints of a table are totally unimodular (a network matrix for 2-D tables), so the
LP bounds are integers and no integer-only reasoning narrows them further.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction

from hygie.disclosure import CellKey, OutputTable

Row = list[Fraction]


class _Simplex:
    def __init__(self, a: list[Row], b: Row, n: int) -> None:
        m = len(a)
        self.n = n
        self.rows: list[Row] = []
        for i in range(m):
            sign = -1 if b[i] < 0 else 1
            art = [Fraction(1) if j == i else Fraction(0) for j in range(m)]
            self.rows.append([sign * v for v in a[i]] + art + [sign * b[i]])
        self.basis = [n + i for i in range(m)]
        self.width = n + m

    def _pivot(self, r: int, c: int, obj: Row) -> None:
        pr = self.rows[r]
        piv = pr[c]
        self.rows[r] = pr = [v / piv for v in pr]
        for i, row in enumerate(self.rows):
            if i != r and row[c] != 0:
                f = row[c]
                self.rows[i] = [x - f * y for x, y in zip(row, pr, strict=True)]
        if obj[c] != 0:
            f = obj[c]
            obj[:] = [x - f * y for x, y in zip(obj, pr, strict=True)]
        self.basis[r] = c

    def _maximise(self, cost: Mapping[int, Fraction], allowed: int) -> Fraction | None:
        """Max of sum cost[j] x_j over columns < allowed; None when unbounded. Bland's rule: no cycling."""
        obj = [Fraction(0)] * (self.width + 1)
        for j, v in cost.items():
            obj[j] = -v
        for r, bvar in enumerate(self.basis):
            if obj[bvar] != 0:
                f = obj[bvar]
                obj[:] = [x - f * y for x, y in zip(obj, self.rows[r], strict=True)]
        while True:
            col = next((j for j in range(allowed) if obj[j] < 0), None)
            if col is None:
                return obj[-1]
            best: tuple[Fraction, int, int] | None = None
            for r, row in enumerate(self.rows):
                if row[col] > 0:
                    cand = (row[-1] / row[col], self.basis[r], r)
                    if best is None or cand[:2] < best[:2]:
                        best = cand
            if best is None:
                return None
            self._pivot(best[2], col, obj)

    def feasible(self) -> bool:
        m = len(self.rows)
        value = self._maximise({self.n + i: Fraction(-1) for i in range(m)}, self.width)
        if value is None or value != 0:
            return False
        # Drive artificial variables out of the basis, dropping redundant rows.
        r = 0
        while r < len(self.rows):
            if self.basis[r] >= self.n:
                col = next((j for j in range(self.n) if self.rows[r][j] != 0), None)
                if col is None:
                    del self.rows[r]
                    del self.basis[r]
                    continue
                self._pivot(r, col, [Fraction(0)] * (self.width + 1))
            r += 1
        return True

    def maximise(self, cost: Mapping[int, Fraction]) -> Fraction | None:
        return self._maximise(cost, self.n)


def intervals(
    table: OutputTable, suppressed: set[CellKey], only: set[CellKey] | None = None
) -> dict[CellKey, tuple[float, float]]:
    """The attacker's exact interval [min, max] for every suppressed cell (max may be inf), or for those in
    ``only`` (the system still has every suppressed cell as an unknown)."""
    people = {c.key: c.people for c in table.cells}
    hidden = sorted(suppressed, key=repr)
    index = {k: i for i, k in enumerate(hidden)}
    equations: list[tuple[dict[int, Fraction], Fraction]] = []
    keys = list(people)
    for d, dim in enumerate(table.dimensions):
        children: dict[object, list[object]] = {}
        codes = {k[d] for k in keys}
        for code in codes:
            p = dim.parent(code)
            if p is not None:
                children.setdefault(p, []).append(code)
        parents_seen: set[CellKey] = set()
        for key in keys:
            if key[d] not in children or key in parents_seen:
                continue
            parents_seen.add(key)
            # parent - sum(children) = 0, with published values moved to the right-hand side.
            terms = [(key, Fraction(1))] + [((*key[:d], ch, *key[d + 1 :]), Fraction(-1)) for ch in children[key[d]]]
            coef: dict[int, Fraction] = {}
            rhs = Fraction(0)
            for k, s in terms:
                if k in index:
                    coef[index[k]] = coef.get(index[k], Fraction(0)) + s
                else:
                    rhs -= s * people.get(k, 0)
            if coef:
                equations.append((coef, rhs))
    n = len(hidden)
    a = [[coef.get(j, Fraction(0)) for j in range(n)] for coef, _ in equations]
    b = [rhs for _, rhs in equations]
    out: dict[CellKey, tuple[float, float]] = {}
    for k, j in index.items():
        if only is not None and k not in only:
            continue
        hi_lp = _Simplex(a, b, n)
        assert hi_lp.feasible(), "the true table must satisfy the attacker's constraints"
        hi = hi_lp.maximise({j: Fraction(1)})
        lo_lp = _Simplex(a, b, n)
        assert lo_lp.feasible()
        neg_lo = lo_lp.maximise({j: Fraction(-1)})
        assert neg_lo is not None
        out[k] = (float(-neg_lo), math.inf if hi is None else float(hi))
    return out
