# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""NIRs typed on the portal (letter requests, activation) leave nothing in the process's memory; ingestion's bulk
lookups keep their cache (and give the same indexes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hygie.governance.citizens import Citizens
from hygie.governance.errors import Denied
from hygie.hub import Hub
from tests.portal.world import PASSWORD, people


@pytest.mark.parametrize("populated", ["sqlite"], indirect=True)
def test_typed_nirs_are_not_kept_in_clear_in_memory(populated: Hub, delivery: Path) -> None:
    hub = populated
    pseudonymiser = hub.pseudonymiser
    person = people(delivery)[30]
    guessed = "1" + person["BEN_NIR"][1:-2] + "00"  # a guess, not anyone's NIR
    for nir in (person["BEN_NIR"], guessed):
        with hub.session() as session:  # one transaction each: the limiter counts on its own connection
            ask = {"last_name": person["NOM"], "birth_date": person["DATE_NAISSANCE"], "source": "203.0.113.30"}
            Citizens(hub, session).request_letter(nir=nir, **ask)
            session.commit()
    with hub.session() as session, pytest.raises(Denied):
        Citizens(hub, session).activate(code="ABCD-EFGH-JKMN-PQRS", nir=guessed, username="x", password=PASSWORD,
                                        source="203.0.113.30")  # fmt: skip
    with hub.session() as session:
        assert hub.vault(session).find(person["BEN_NIR"]) is not None
    held = set(pseudonymiser._indexes) | set(pseudonymiser._pseudonyms) | set(pseudonymiser._memo[0].to_pylist())
    assert person["BEN_NIR"] not in held and guessed not in held
    # The single lookups give what ingestion's cached bulk lookups give.
    single = (pseudonymiser.index(person["BEN_NIR"]), pseudonymiser.at(1).pseudonym(person["BEN_NIR"]))
    assert pseudonymiser.indexes([person["BEN_NIR"]]) == [single[0]] and person["BEN_NIR"] in pseudonymiser._indexes
    assert pseudonymiser.at(1).pseudonyms([person["BEN_NIR"]]) == [single[1]]
    assert pseudonymiser.indexes([guessed, person["BEN_NIR"], guessed], cache=False)[1] == single[0]
    assert guessed not in pseudonymiser._indexes
