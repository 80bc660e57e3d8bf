# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The ingestion's set of people the vault holds answers as a set would, whatever it was given in what order."""

from __future__ import annotations

from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st

from hygie.identity.vault import IdentityVault, KnownPeople

_INDEXES = st.binary(min_size=32, max_size=32)


class _Deliveries:
    """The vault's records as they are added, in rounds (``new_indexes_since`` is all ``refresh`` reads)."""

    def __init__(self) -> None:
        self.rows: list[bytes] = []

    def new_indexes_since(self, after_id: int) -> tuple[list[bytes], int]:
        return self.rows[after_id:], len(self.rows)


@given(st.lists(st.lists(_INDEXES, max_size=40), max_size=5), st.lists(_INDEXES, max_size=40))
def test_known_people_is_the_set_of_every_index_added(rounds: list[list[bytes]], probes: list[bytes]) -> None:
    known, vault, added = KnownPeople(), _Deliveries(), set()
    assert known.contains(probes) == [False] * len(probes)
    for new in rounds:
        vault.rows += new
        added |= {i[:8] for i in new}
        known.refresh(cast(IdentityVault, cast(Any, vault)))
        asked = probes + new + [i[:8] + b"\xff" * 24 for i in new]  # same first 8 bytes: the set's known limit
        assert known.contains(asked) == [i[:8] in added for i in asked]
