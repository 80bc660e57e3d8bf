# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Review's field-by-field comparison: agreement and similarity, never a value."""

from __future__ import annotations

from hygie.breach.compare import Agreement, compare
from hygie.breach.mapping import Column, Field
from hygie.identity.vault import Identity

PERSON = Identity(nir="185057800608436", rng_gem="1", last_name="DUPONT-MOREAU", first_name="Émilie",
                  birth_date="1985-05-12", address="12 rue des Lilas", postcode="75011", commune="PARIS 11",
                  phone="0612345678", email="emilie.dupont@example.org")  # fmt: skip


def _cells(*pairs: tuple[Field, str]) -> list[tuple[Column, str]]:
    return [(Column(i, f"h{i}", field, "header"), value) for i, (field, value) in enumerate(pairs)]


def test_each_identifying_cell_gets_an_agreement_and_no_value() -> None:
    got = compare(_cells(
        (Field.NIR, "1 85 05 78 006 084 36"), (Field.LAST_NAME, "dupont moreau"), (Field.FIRST_NAME, "Emilie"),
        (Field.FULL_NAME, "Émilie Dupont-Moreau"), (Field.BIRTH_DATE, "12/06/1985"), (Field.POSTCODE, "75012"),
        (Field.PHONE, "+33 6 12 34 56 78"), (Field.EMAIL, ""), (Field.ADDRESS, "12 rue des Lilas"),
        (Field.SEX, "F"), (Field.BLOOD_GROUP, "A+"), (Field.LAST_NAME, "Martin"),
    ), PERSON, 0.8)  # fmt: skip
    said = {(f.column, f.field): (f.agreement, f.score, f.missing_on) for f in got}
    assert said[(0, "nir")] == (Agreement.EXACT, 1.0, None)
    assert said[(1, "last_name")] == (Agreement.EXACT, 1.0, None)  # folded: case, accents, hyphens
    assert said[(2, "first_name")] == (Agreement.EXACT, 1.0, None)
    assert said[(3, "full_name")] == (Agreement.EXACT, 1.0, None)  # whichever name comes first
    assert said[(4, "birth_date")] == (Agreement.DIFFERS, 0.67, None)  # two parts of three
    assert said[(5, "postcode")][0] is Agreement.CLOSE and said[(5, "postcode")][1] == 0.8
    assert said[(6, "phone")] == (Agreement.EXACT, 1.0, None)
    assert said[(7, "email")] == (Agreement.MISSING, None, "leak")
    assert said[(8, "address")] == (Agreement.EXACT, 1.0, None)
    assert said[(9, "sex")] == (Agreement.DIFFERS, 0.0, None)  # the NIR says a man
    assert (10, "blood_group") not in said  # health data is not compared
    assert said[(11, "last_name")][0] is Agreement.DIFFERS
    text = repr(got)
    for value in ("DUPONT", "Émilie", "Lilas", "0612345678", "75011", "185057800608436", "1985"):
        assert value not in text


def test_a_field_the_vault_lacks_is_missing_on_its_side() -> None:
    bare = Identity(**{**PERSON.__dict__, "phone": None, "commune": None})
    got = compare(_cells((Field.PHONE, "0612345678"), (Field.COMMUNE, "Paris")), bare, 0.8)
    assert [(f.agreement, f.missing_on) for f in got] == [(Agreement.MISSING, "vault")] * 2
