# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Claim lines, the common currency between the care model, the flows and the CSV rendering."""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from hygie.synth.tariffs import NOT_EXEMPT

IntArray = npt.NDArray[np.int64]


class Detail(IntEnum):
    NONE = 0
    PHARMACY = 1
    LAB = 2
    CCAM = 3


@dataclass
class Lines:
    """Claim lines, one element per future ER_PRS_F row. Amounts in cents."""

    person: IntArray
    """Index of the person within the chunk."""
    claim: IntArray
    """Claim (décompte) number within the chunk; a claim's lines share person, day, provider and flow."""
    day: IntArray
    pre_day: IntArray
    """Prescription day, -1 when there is no prescription."""
    nat: IntArray
    exe: IntArray
    pre: IntArray
    """Prescriber (index into Providers), -1 when none."""
    qty: IntArray
    cft: IntArray
    unit: IntArray
    """Unit price (BSE_REM_PRU): tariff, box price, or the B letter value for lab acts."""
    overfee: IntArray
    """Billed above the tariff (secteur 2)."""
    rate: IntArray
    exo: IntArray
    detail: IntArray
    item: IntArray
    """Drug index (pharmacy), NABM code (lab) or index into ccam_codes() (CCAM); -1 otherwise."""

    @property
    def size(self) -> int:
        return int(self.person.size)

    def take(self, idx: IntArray) -> Lines:
        return Lines(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    @staticmethod
    def concat(parts: list[Lines]) -> Lines:
        return Lines(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Lines)})


class ClaimBook:
    """Accumulates claims; hands out claim numbers."""

    def __init__(self) -> None:
        self.parts: list[Lines] = []
        self.next_claim = 0

    def add(
        self,
        *,
        person: IntArray,
        day: IntArray,
        exe: IntArray,
        pre: IntArray | int = -1,
        pre_day: IntArray | int = -1,
        line_claim: IntArray | None = None,
        nat: IntArray | int,
        unit: IntArray | int,
        rate: IntArray | int,
        exo: IntArray | int = NOT_EXEMPT,
        detail: Detail = Detail.NONE,
        item: IntArray | int = -1,
        qty: IntArray | int = 1,
        cft: IntArray | int = 1,
        overfee: IntArray | int = 0,
    ) -> None:
        """Claim-level arrays have one element per claim; line-level ones (nat...overfee) one per line, where
        ``line_claim`` maps each line to its claim (default: one line per claim)."""
        m = person.size
        lc = np.arange(m, dtype=np.int64) if line_claim is None else line_claim
        n = lc.size

        def per_claim(v: IntArray | int) -> IntArray:
            return np.broadcast_to(np.asarray(v, dtype=np.int64), (m,))[lc].copy()

        def per_line(v: IntArray | int) -> IntArray:
            return np.broadcast_to(np.asarray(v, dtype=np.int64), (n,)).copy()

        self.parts.append(
            Lines(
                person=person[lc],
                claim=self.next_claim + lc,
                day=day[lc],
                pre_day=per_claim(pre_day),
                nat=per_line(nat),
                exe=exe[lc],
                pre=per_claim(pre),
                qty=per_line(qty),
                cft=per_line(cft),
                unit=per_line(unit),
                overfee=per_line(overfee),
                rate=per_line(rate),
                exo=per_line(exo),
                detail=per_line(int(detail)),
                item=per_line(item),
            )
        )
        self.next_claim += m

    def lines(self) -> Lines:
        return Lines.concat(self.parts)
