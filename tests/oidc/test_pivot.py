# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The vault's keyed identity pivot index: what a provider vouches for finds exactly the right person, by keyed
lookups only; homonyms are never resolved by guessing; data older than the index is covered by the rebuild."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import delete, select
from typer.testing import CliRunner

from hygie.cli import app as cli_app
from hygie.hub import Hub
from hygie.identity import pivot
from hygie.identity.nir import nir_key
from hygie.identity.pivot import IdentityPivotMark, IdentityPivotRow, PivotIndexIncomplete, candidates, pivot_of_claims
from tests.conftest import cli_env
from tests.oidc.idp import pivot_claims


def nir(first13: str) -> str:
    return first13 + nir_key(first13)


PEOPLE = [
    # NIR, family name, given name, birth date
    (nir("1800275056123"), "LEFÈVRE-DUPONT", "Jean", "1980-02-14"),  # Paris, accents and hyphen
    (nir("2850275056124"), "Martin", "Chloé", "1985-02-03"),
    (nir("2850275056125"), "Martin", "Chloé", "1985-02-03"),  # a homonym: same pivot, another NIR
    (nir("1701220004001"), "Santoni", "Paul", "1970-12-01"),  # Corsica before 1976: département 20
    (nir("1920399134002"), "García", "Lucía", "1992-03-09"),  # born abroad (Spain)
    (nir("1550291001003"), "Benali", "Ahmed", "1955-02-17"),  # Algeria before 1962: never matched
]


def person(n: str, last: str, first: str, born: str) -> dict[str, str]:
    return {"BEN_NIR": n, "NOM": last, "PRENOM": first, "DATE_NAISSANCE": born}


def store(hub: Hub, people: list[tuple[str, str, str, str]]) -> None:
    empty = ("rng_gem", "address", "postcode", "commune", "phone", "email", "pseudonym")
    columns: dict[str, Any] = {name: pa.array([None] * len(people), pa.string()) for name in empty}
    for position, name in enumerate(("nir", "last_name", "first_name", "birth_date")):
        columns[name] = pa.array([p[position] for p in people], pa.string())
    with hub.session() as session:
        vault = hub.vault(session)
        vault.store(vault.seal(columns, "test-batch"))
        session.commit()


def found(hub: Hub, claims: dict[str, str]) -> list[bytes]:
    wanted = pivot_of_claims(claims)
    assert wanted is not None
    with hub.session() as session:
        result = candidates(session, hub.custody, hub.vault(session), wanted)
        session.commit()
        return result


def test_pivot_canonical_forms() -> None:
    claims = pivot_claims(person(*PEOPLE[0]))
    spelled = {**claims, "family_name": "Lefevre Dupont", "given_name": "JEAN Pierre Marie"}
    assert pivot_of_claims(spelled) == pivot_of_claims(claims)
    assert pivot.pivots_of_record(*PEOPLE[0]) == [pivot_of_claims(claims)]
    corsica = pivot.pivots_of_record(*PEOPLE[3])
    assert [p.birth_place for p in corsica] == ["2A004", "2B004"]
    abroad = pivot.pivots_of_record(*PEOPLE[4])
    assert [(p.birth_place, p.birth_country) for p in abroad] == [("", "99134")]
    assert pivot.pivots_of_record(*PEOPLE[5]) == []  # the provider gives Algeria as a country: not derivable
    assert pivot.pivots_of_record(nir("7800275056123"), "X", "Y", "1980-02-14") == []  # provisional NIR
    assert pivot_of_claims({**claims, "gender": ""}) is None
    assert pivot_of_claims({**claims, "birthplace": ""}) is None  # born in France without a commune


def test_lookup_finds_exactly_the_person_and_never_resolves_homonyms(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    store(hub, PEOPLE)
    index = hub.pseudonymiser.index
    assert found(hub, pivot_claims(person(*PEOPLE[0]))) == [index(PEOPLE[0][0])]
    assert sorted(found(hub, pivot_claims(person(*PEOPLE[1])))) == sorted([index(PEOPLE[1][0]), index(PEOPLE[2][0])])
    corsica = {**pivot_claims(person(*PEOPLE[3])), "birthplace": "2B004"}
    assert found(hub, corsica) == [index(PEOPLE[3][0])]
    assert found(hub, pivot_claims(person(*PEOPLE[4]))) == [index(PEOPLE[4][0])]
    assert found(hub, {**pivot_claims(person(*PEOPLE[0])), "birthdate": "1980-02-15"}) == []
    assert found(hub, {**pivot_claims(person(*PEOPLE[0])), "gender": "female"}) == []
    with hub.session() as session:
        stored = session.scalars(select(IdentityPivotRow.pivot)).all()
        assert len(stored) == 6 and all(len(k) == 32 for k in stored)  # keyed digests only (Corsica twice)
        assert session.get(IdentityPivotMark, 1) is not None

    # Data stored before the index existed: the lookup indexes a few records itself, or refuses to answer.
    with hub.session() as session:
        session.execute(delete(IdentityPivotRow))
        session.execute(delete(IdentityPivotMark))
        session.commit()
    monkeypatch.setattr(pivot, "CATCH_UP_LIMIT", 2)
    wanted = pivot_of_claims(pivot_claims(person(*PEOPLE[0])))
    assert wanted is not None
    with hub.session() as session, pytest.raises(PivotIndexIncomplete, match="rebuild-pivot"):
        candidates(session, hub.custody, hub.vault(session), wanted)

    result = CliRunner().invoke(cli_app, ["vault", "rebuild-pivot"], env=cli_env(hub.settings))
    assert result.exit_code == 0, result.output
    assert "indexed 6 vault record(s)" in result.output
    assert found(hub, pivot_claims(person(*PEOPLE[0]))) == [index(PEOPLE[0][0])]
