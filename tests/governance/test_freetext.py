# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hygie.governance.errors import Invalid
from hygie.governance.freetext import check_free_text, identifier_kinds
from tests.delivery import make_nir


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("patient 1 85 05 75 123 456 12 contacted", None),
        ("write to jean.dupont@example.org please", "e-mail"),
        ("call 06 12 34 56 78", "phone"),
        ("call +33 6 12 34 56 78", "phone"),
    ],
)
def test_identifiers_are_found(text: str, kind: str | None) -> None:
    kinds = identifier_kinds(text)
    if kind:
        assert any(kind in k for k in kinds)


def test_valid_nirs_and_their_first_13_digits_are_refused_without_being_quoted() -> None:
    nir = make_nir(2, 1985, 5, "2A", 123, 45)
    for text in (f"the person {nir} asked", f"NIR {nir[:13]} here", f"{nir[0]} {nir[1:3]} {nir[3:5]} {nir[5:7]} "
                 f"{nir[7:10]} {nir[10:13]} {nir[13:]}"):  # fmt: skip
        with pytest.raises(Invalid) as caught:
            check_free_text("reason", text)
        assert nir[:13] not in caught.value.message and "NIR" in caught.value.message


def test_ordinary_reasons_pass() -> None:
    for text in ("Finalité légale, périmètre minimal, 2 relecteurs.", "Projet 12, 2024-01 à 2024-12, seuil 11.",
                 "Population de 1 250 000 personnes, département 075, région 11."):  # fmt: skip
        assert check_free_text("reason", text) == text


@given(st.text(alphabet="abcdefghij ,.;:-'éèà()", max_size=200))
def test_text_without_digits_or_at_signs_always_passes(text: str) -> None:
    assert identifier_kinds(text) == []
