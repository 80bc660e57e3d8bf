# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Complementary suppression: the hypercube method, generalised to subtotal hierarchies and non-additive counts.

An attacker holds the released table: every published cell and margin, and the knowledge that counts are
non-negative and that each margin is the sum of the cells under it. A suppressed cell is safe when that system
leaves its value uncertain over a wide interval. Rather than solve linear programs, we *prove* the interval for
each sensitive cell by exhibiting a direction in which the suppressed cells can move together while every
published number and every relation stays true (the idea of Repsilber's hypercube method, GHMITER in tau-Argus):

- along one dimension a valid move is +1 on the path from a leaf code up to its top code, optionally minus the same
  for another leaf under the same top; a pair of sibling cells (+1, -1) and a cell with its total (+1, +1) are the
  familiar cases. Every subtotal equation along that dimension stays balanced;
- the product of one valid move per dimension (a hypercube: 2**d corners in a d-dimensional table) balances every
  equation of the table, because each equation runs along one dimension with the others fixed.

Moving by t keeps all corners non-negative for t in [-down, +up], where down is the smallest corner moving with the
target and up the smallest moving against it. So the attacker's interval contains [value - down, value + up] no
matter what else is suppressed: suppressing more never narrows it. For each sensitive cell we pick, among the
hypercubes whose corners are all non-empty and whose guaranteed width reaches the protection level, the one that
suppresses the fewest additional people.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hygie.disclosure.table import CellKey, Dimension, DimValue, OutputTable

Move = dict[DimValue, int]
"""Signed codes along one dimension."""


@dataclass(frozen=True)
class Protection:
    """What the attacker cannot exclude for one sensitive cell: at least [value - down, value + up]."""

    target: CellKey
    value: int
    partners: frozenset[CellKey]
    down: float
    up: float
    required: int

    @property
    def width(self) -> float:
        return self.down + self.up

    @property
    def protected(self) -> bool:
        """Wide enough, and neither end pinned: a small cell can be 0, an empty cell (value 0) can be 1 or more, up
        to the protection level, so empty and small cells look alike."""
        return (self.down >= 1 or self.value == 0) and self.up >= 1 and self.width >= self.required


class _Axis:
    """The code tree of one dimension: leaves, paths to the top, subtrees."""

    def __init__(self, dim: Dimension, codes: Iterable[DimValue]) -> None:
        every = set(codes)
        if dim.total is not None:
            every.add(dim.total)
        every.update(dim.parents.values())
        self.parent: dict[DimValue, DimValue | None] = {}
        self.children: dict[DimValue, list[DimValue]] = {c: [] for c in every}
        for code in every:
            p = dim.parent(code)
            self.parent[code] = p
            if p is not None:
                self.children.setdefault(p, []).append(code)
                self.parent.setdefault(p, dim.parent(p))
        for kids in self.children.values():
            kids.sort(key=repr)
        self.leaves_under: dict[DimValue, list[DimValue]] = {}

    def path(self, code: DimValue) -> list[DimValue]:
        out = [code]
        seen = {code}
        while (p := self.parent.get(out[-1])) is not None:
            if p in seen:
                raise ValueError(f"the subtotal hierarchy has a cycle through {p!r}")
            seen.add(p)
            out.append(p)
        return out

    def leaves(self, code: DimValue) -> list[DimValue]:
        if code not in self.leaves_under:
            kids = self.children.get(code, [])
            self.leaves_under[code] = [code] if not kids else [leaf for k in kids for leaf in self.leaves(k)]
        return self.leaves_under[code]

    def moves(self, code: DimValue) -> list[Move]:
        mine = self.leaves(code)
        own = set(mine)
        out: list[Move] = []
        for leaf in mine:
            up_path = self.path(leaf)
            out.append(dict.fromkeys(up_path, 1))
            for other in self.leaves(up_path[-1]):
                if other in own:
                    continue
                move: Move = dict.fromkeys(up_path, 1)
                for node in self.path(other):
                    move[node] = move.get(node, 0) - 1
                out.append({k: v for k, v in move.items() if v})
        return out


class HypercubeSuppressor:
    def __init__(self, table: OutputTable, required_width: int, budget: int) -> None:
        self.table = table
        self.required = required_width
        self.budget = budget
        self.people: dict[CellKey, int] = {c.key: c.people for c in table.cells}
        self.axes = [_Axis(dim, (c.key[i] for c in table.cells)) for i, dim in enumerate(table.dimensions)]

    def protect(self, sensitive: Iterable[CellKey], suppressed: set[CellKey]) -> list[Protection]:
        """Adds partners to ``suppressed`` (in place) until each sensitive cell is protected, or as close as the
        table allows. Most sensitive (smallest non-empty) cells first, so their partners can serve the others for
        free; empty cells under a small margin last."""
        order = sorted(sensitive, key=lambda k: (self.people.get(k, 0) == 0, self.people.get(k, 0), repr(k)))
        results = []
        for target in order:
            found = self._best(target, suppressed)
            suppressed.update(found.partners)
            suppressed.add(target)
            results.append(found)
        return results

    def _line_cost(self, target: CellKey, axis: int, move: Move, suppressed: set[CellKey]) -> tuple[bool, int]:
        cost = 0
        for code in move:
            key = (*target[:axis], code, *target[axis + 1 :])
            people = self.people.get(key, 0)
            if people <= 0 and key != target:
                return False, 0
            if key not in suppressed and key != target:
                cost += people
        return True, cost

    def _candidates(self, target: CellKey, suppressed: set[CellKey]) -> list[list[Move]]:
        per_axis: list[list[Move]] = []
        for i, axis in enumerate(self.axes):
            scored = []
            for move in axis.moves(target[i]):
                ok, cost = self._line_cost(target, i, move, suppressed)
                if ok:
                    scored.append((cost, len(move), move))
            scored.sort(key=lambda s: (s[0], s[1]))
            per_axis.append([m for _, _, m in scored])
        branching = sum(1 for moves in per_axis if len(moves) > 1)
        if branching:
            keep = max(1, math.floor(self.budget ** (1 / branching)))
            per_axis = [moves[:keep] for moves in per_axis]
        return per_axis

    def _best(self, target: CellKey, suppressed: set[CellKey]) -> Protection:
        value = self.people.get(target, 0)
        best: tuple[tuple[float, ...], Protection] | None = None
        for combo in itertools.product(*self._candidates(target, suppressed)):
            corners = _corners(combo)
            evaluated = self._evaluate(target, value, corners, suppressed)
            if evaluated is None:
                continue
            protection, cost = evaluated
            new_cells = sum(1 for k in protection.partners if k not in suppressed)
            if protection.protected:
                rank: tuple[float, ...] = (0, cost, new_cells, -protection.width)
            else:
                rank = (1, -protection.width, cost, new_cells)
            if best is None or rank < best[0]:
                best = (rank, protection)
        if best is None:
            return Protection(target, value, frozenset(), 0, 0, self.required)
        return best[1]

    def _evaluate(
        self, target: CellKey, value: int, corners: Mapping[CellKey, int], suppressed: set[CellKey]
    ) -> tuple[Protection, int] | None:
        up = math.inf
        down = math.inf
        cost = 0
        for key, sign in corners.items():
            people = self.people.get(key, 0)
            if people <= 0 and key != target:
                return None  # an empty partner would pin the move at 0 (the target itself may be empty)
            if sign > 0:
                down = min(down, people)
            else:
                up = min(up, people)
            if key not in suppressed and key != target:
                cost += people
        if not self.table.people_additive:
            up, down = self._clip(corners, up, down)
        partners = frozenset(k for k in corners if k != target)
        return Protection(target, value, partners, down, up, self.required), cost

    def _clip(self, corners: Mapping[CellKey, int], up: float, down: float) -> tuple[float, float]:
        """When margins are not sums, the attacker still knows a cell never exceeds a margin above it: the move
        must keep every corner below its parents and above its children that stay put."""
        for key, sign in corners.items():
            people = self.people[key]
            for i, axis in enumerate(self.axes):
                parent = axis.parent.get(key[i])
                if parent is not None:
                    pkey = (*key[:i], parent, *key[i + 1 :])
                    if pkey not in corners:
                        room = self.people.get(pkey, 0) - people
                        up, down = (min(up, room), down) if sign > 0 else (up, min(down, room))
                for child in axis.children.get(key[i], []):
                    ckey = (*key[:i], child, *key[i + 1 :])
                    if ckey not in corners:
                        room = people - self.people.get(ckey, 0)
                        up, down = (up, min(down, room)) if sign > 0 else (min(up, room), down)
        return max(up, 0), max(down, 0)


def _corners(combo: tuple[Move, ...]) -> dict[CellKey, int]:
    corners: dict[CellKey, int] = {}
    for parts in itertools.product(*(move.items() for move in combo)):
        sign = 1
        for _, s in parts:
            sign *= s
        corners[tuple(code for code, _ in parts)] = sign
    return corners
