"""The vault's bulk reads the breach matching relies on: records in arrival order, and each person's newest."""

from __future__ import annotations

import pyarrow as pa

from hygie.identity.vault import RECORD_FIELDS
from tests.portal.world import World, people


def test_records_page_through_the_vault_in_arrival_order(shared_world: World) -> None:
    with shared_world.hub.session() as session:
        vault = shared_world.hub.vault(session)
        first = vault.records(0, 7)
        rest = vault.records(first[-1][0], 10_000)
    ids = [r[0] for r in first + rest]
    assert len(first) == 7 and ids == sorted(ids) and len(set(ids)) == len(ids)
    assert {r[2].nir for r in first + rest} >= {p["BEN_NIR"] for p in people(shared_world.delivery)}
    index = shared_world.hub.pseudonymiser.index
    assert all(person_index == index(identity.nir) for _, person_index, identity in first)


def test_identities_of_gives_the_newest_record_and_skips_strangers(shared_world: World) -> None:
    hub = shared_world.hub
    person = people(shared_world.delivery)[3]
    with hub.session() as session:
        vault = hub.vault(session)
        before = vault.find(person["BEN_NIR"])
        assert before is not None and before.last_name == person["NOM"]
        # A re-delivery with a new family name: the newest version is current.
        values = {f: getattr(before, f) for f in RECORD_FIELDS} | {"last_name": "NOUVEAUNOM"}
        vault.store(vault.seal({f: pa.array([v], pa.string()) for f, v in values.items()}, "redelivery"))
        stranger = b"\x00" * 32
        found = vault.identities_of([hub.pseudonymiser.index(person["BEN_NIR"]), stranger])
        assert list(found) == [hub.pseudonymiser.index(person["BEN_NIR"])]
        assert found[hub.pseudonymiser.index(person["BEN_NIR"])].last_name == "NOUVEAUNOM"
        assert vault.pseudonyms_of(list(found)) == {k: v.pseudonym for k, v in found.items()}
        session.rollback()
