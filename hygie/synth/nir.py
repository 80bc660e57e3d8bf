# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Synthetic NIRs: valid (control key right) and unique across the whole output.

15 characters: sex(1) birth year(2) birth month(2) place of birth(5) order(3) key(2). The place is a
département (2 characters, "2A"/"2B" for Corsica) and a commune (3 digits); overseas births use "97" and the
INSEE commune code's last three digits ("97" + "411" for Saint-Denis de La Réunion); births abroad "99" and an
INSEE country code.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]

# Countries of birth abroad (INSEE codes, without the leading "99") with rough weights of France's
# foreign-born population.
BIRTH_COUNTRIES: dict[str, float] = {
    "352": 0.21, "350": 0.17, "139": 0.09, "351": 0.07, "127": 0.04, "134": 0.04, "208": 0.04,
    "132": 0.02, "131": 0.02, "109": 0.02, "341": 0.03, "326": 0.03, "335": 0.02, "322": 0.02,
    "216": 0.03, "243": 0.02, "114": 0.03, "122": 0.01,
}  # fmt: skip

_ORDER_SPACE = 999


def _numeric_department(code: str) -> int:
    """The value a NIR's two département characters take in the key computation."""
    return {"2A": 19, "2B": 18}.get(code, 0) or int(code)


def _key(first13: IntArray) -> IntArray:
    # Same formula as hygie.identity.nir.nir_key (kept private here: the synthesiser does not depend on the
    # identity vault); the tests check every generated NIR against python-stdnum.
    return 97 - first13 % 97


class NirRegistry:
    """Hands out NIRs that are unique over every chunk of one generation run.

    Kept as a sorted array of the NIRs' first 13 digits (8 bytes a person), with Corsica folded onto a
    département number no other NIR uses, so that "2A..." and "19..." never pass for the same number.
    """

    def __init__(self) -> None:
        self._used: IntArray = np.zeros(0, dtype=np.int64)

    def issue(
        self,
        rng: np.random.Generator,
        sex: IntArray,
        birth_year: IntArray,
        birth_month: IntArray,
        department: list[str],
        commune: list[str],
    ) -> list[str]:
        n = len(sex)
        dep_key = np.array([20 if d in ("2A", "2B") else int(d) for d in department], dtype=np.int64)
        dep_num = np.array([_numeric_department(d) for d in department], dtype=np.int64)
        com = np.array([int(c) for c in commune], dtype=np.int64)
        head = sex * 10**12 + (birth_year % 100) * 10**10 + birth_month * 10**8 + com * 10**3
        order = rng.integers(1, _ORDER_SPACE + 1, size=n)
        pending = np.arange(n)
        while pending.size:
            unique_key = head + dep_key * 10**6 + order
            taken = np.zeros(n, dtype=bool)
            pos = np.searchsorted(self._used, unique_key)
            pos[pos == self._used.size] = 0
            if self._used.size:
                taken |= self._used[pos] == unique_key
            # Within the chunk, the first holder of a number keeps it; later ones draw again.
            _, first = np.unique(unique_key, return_index=True)
            dup = np.ones(n, dtype=bool)
            dup[first] = False
            taken |= dup
            pending = np.flatnonzero(taken)
            order[pending] = rng.integers(1, _ORDER_SPACE + 1, size=pending.size)
        self._used = np.union1d(self._used, head + dep_key * 10**6 + order)
        first13 = head + dep_num * 10**6 + order
        keys = _key(first13)
        out = []
        for i in range(n):
            out.append(
                f"{sex[i]}{birth_year[i] % 100:02d}{birth_month[i]:02d}{department[i]}"
                f"{commune[i]}{order[i]:03d}{keys[i]:02d}"
            )
        return out
