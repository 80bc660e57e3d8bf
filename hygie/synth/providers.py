# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Health professionals: pools per département sized to the population they serve.

Pool sizes follow French densities (about one GP per 1,100 people, a pharmacy per 2,500, a laboratory per
15,000, specialists per 100,000 by specialty), so that with a regular GP per patient each professional's
daily volume stays plausible (a GP sees some twenty patients a day, never hundreds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from hygie.synth.codes import require
from hygie.synth.geography import departments

IntArray = npt.NDArray[np.int64]


class Kind(IntEnum):
    GP = 0
    PHARMACY = 1
    LAB = 2
    CARDIOLOGY = 3
    DERMATOLOGY = 4
    RADIOLOGY = 5
    GYNECOLOGY = 6
    OPHTHALMOLOGY = 7
    PEDIATRICS = 8
    PSYCHIATRY = 9
    GASTROENTEROLOGY = 10
    PNEUMOLOGY = 11
    RHEUMATOLOGY = 12
    ENDOCRINOLOGY = 13
    ENT = 14


@dataclass(frozen=True)
class KindInfo:
    specialty: int
    """IR_SPE_V.PFS_SPE_COD; 0 ("non renseigné") for non-physicians, as pharmacies have no medical specialty."""
    activity: int
    """IR_ACT_V.PFS_ACT_NAT: pharmacies and laboratories; 0 for physicians (the list covers non-physicians)."""
    people_per_unit: float
    category: str
    """Digit after the département in the professional's number: 1 physician, 2 pharmacy, 6 laboratory."""
    sector2_share: float
    """Share allowed to bill above the tariff (secteur 2)."""


KINDS: dict[Kind, KindInfo] = {
    Kind.GP: KindInfo(1, 0, 1_100, "1", 0.05),
    Kind.PHARMACY: KindInfo(0, 50, 2_500, "2", 0.0),
    Kind.LAB: KindInfo(38, 30, 15_000, "6", 0.0),
    Kind.CARDIOLOGY: KindInfo(3, 0, 14_000, "1", 0.35),
    Kind.DERMATOLOGY: KindInfo(5, 0, 20_000, "1", 0.45),
    Kind.RADIOLOGY: KindInfo(6, 0, 10_000, "1", 0.2),
    Kind.GYNECOLOGY: KindInfo(70, 0, 17_000, "1", 0.55),
    Kind.OPHTHALMOLOGY: KindInfo(15, 0, 12_500, "1", 0.6),
    Kind.PEDIATRICS: KindInfo(12, 0, 22_000, "1", 0.3),
    Kind.PSYCHIATRY: KindInfo(33, 0, 11_000, "1", 0.4),
    Kind.GASTROENTEROLOGY: KindInfo(8, 0, 33_000, "1", 0.45),
    Kind.PNEUMOLOGY: KindInfo(13, 0, 40_000, "1", 0.3),
    Kind.RHEUMATOLOGY: KindInfo(14, 0, 33_000, "1", 0.45),
    Kind.ENDOCRINOLOGY: KindInfo(42, 0, 50_000, "1", 0.45),
    Kind.ENT: KindInfo(11, 0, 25_000, "1", 0.55),
}


def _check_codes() -> None:
    require("IR_SPE_V", *{k.specialty for k in KINDS.values()})
    require("IR_ACT_V", *{k.activity for k in KINDS.values()})


@dataclass(frozen=True)
class Providers:
    number: list[str]
    """PFS_EXE_NUM / PFS_PRE_NUM of each professional (9 characters)."""
    specialty: IntArray
    activity: IntArray
    overfee_cents: IntArray
    """What a secteur-2 professional bills above the tariff per consultation; 0 for secteur 1."""
    first: IntArray
    """first[kind, dpt]: index of the first professional of that kind in that département."""
    count: IntArray
    """count[kind, dpt]: how many there are (at least one)."""

    def pick(self, rng: np.random.Generator, kind: Kind | IntArray, dpt: IntArray) -> IntArray:
        """A professional of ``kind`` (one kind, or one per element) in each département of ``dpt``."""
        k = np.broadcast_to(np.asarray(kind, dtype=np.int64), dpt.shape)
        n = self.count[k, dpt]
        return self.first[k, dpt] + (rng.random(dpt.shape) * n).astype(np.int64)


def build_providers(rng: np.random.Generator, people: int) -> Providers:
    """The pools for a population of ``people`` spread over départements like France's.

    Sized from the expected (not the drawn) number of residents so that the pools do not depend on how people
    are chunked, only on the seed and the population size.
    """
    _check_codes()
    dpts = departments()
    pop = np.array([d.population for d in dpts], dtype=np.float64)
    residents = people * pop / pop.sum()
    n_kinds = len(Kind)
    first = np.zeros((n_kinds, len(dpts)), dtype=np.int64)
    count = np.zeros((n_kinds, len(dpts)), dtype=np.int64)
    numbers: list[str] = []
    specialty: list[int] = []
    activity: list[int] = []
    overfee: list[int] = []
    for j, d in enumerate(dpts):
        prefix = d.code[1:] if d.code.startswith("0") else d.code
        serial_digits = 7 - len(prefix)
        sizes = {kind: max(1, math.ceil(residents[j] / KINDS[kind].people_per_unit)) for kind in Kind}
        # One draw without replacement per (département, category digit): numbers are unique by construction.
        serials: dict[str, list[int]] = {}
        for category in sorted({info.category for info in KINDS.values()}):
            total = sum(n for kind, n in sizes.items() if KINDS[kind].category == category)
            serials[category] = rng.choice(10**serial_digits, size=total, replace=False).tolist()
        for kind in Kind:
            info = KINDS[kind]
            n = sizes[kind]
            first[kind, j] = len(numbers)
            count[kind, j] = n
            sector2 = rng.random(n) < info.sector2_share
            fees = np.where(sector2, rng.integers(8, 45, size=n) * 100, 0)
            for fee in fees.tolist():
                body = f"{prefix}{info.category}{serials[info.category].pop():0{serial_digits}d}"
                numbers.append(body + _check_digit(body))
                specialty.append(info.specialty)
                activity.append(info.activity)
                overfee.append(int(fee))
    return Providers(
        number=numbers,
        specialty=np.array(specialty, dtype=np.int64),
        activity=np.array(activity, dtype=np.int64),
        overfee_cents=np.array(overfee, dtype=np.int64),
        first=first,
        count=count,
    )


def _check_digit(body: str) -> str:
    digits = [int(c) if c.isdigit() else 1 for c in body]
    total = sum(d * (2 if i % 2 else 1) for i, d in enumerate(digits))
    return str((10 - total % 10) % 10)
