# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.fr import nir as stdnum_nir

from hygie.identity.nir import InvalidNIR, is_valid_nir, nir_key, split_nir, validate_nir

departments = st.one_of(
    st.integers(1, 95).filter(lambda d: d != 20).map(lambda d: f"{d:02d}"),
    st.sampled_from(["2A", "2B"]),
)


@st.composite
def nirs(draw: st.DrawFn) -> str:
    body = (
        draw(st.sampled_from("12"))
        + f"{draw(st.integers(0, 99)):02d}"
        + f"{draw(st.integers(1, 12)):02d}"
        + draw(departments)
        + f"{draw(st.integers(1, 990)):03d}"
        + f"{draw(st.integers(1, 999)):03d}"
    )
    return body + nir_key(body)


@given(nirs())
def test_computed_key_agrees_with_stdnum(nir: str) -> None:
    assert stdnum_nir.is_valid(nir)
    assert validate_nir(nir) == nir
    parts = split_nir(nir)
    assert parts.key == nir[13:]


@given(nirs(), st.integers(1, 96))
def test_any_wrong_key_is_refused_without_echo(nir: str, delta: int) -> None:
    wrong = nir[:13] + f"{(int(nir[13:]) + delta - 1) % 97 + 1:02d}"
    if wrong == nir:
        return
    with pytest.raises(InvalidNIR) as info:
        validate_nir(wrong)
    assert wrong not in str(info.value)
    assert nir[:13] not in str(info.value)


@given(st.text(max_size=20))
def test_arbitrary_text_never_crashes_and_never_echoes(text: str) -> None:
    try:
        validate_nir(text)
    except InvalidNIR as exc:
        if len(text) >= 4:
            assert text not in str(exc)


def test_corsica() -> None:
    body = "185052A001001"
    nir = body + nir_key(body)
    assert int(nir_key(body)) == 97 - int("1850519001001") % 97
    assert is_valid_nir(nir)


@given(st.lists(st.one_of(nirs(), st.text(alphabet="0123456789AB", min_size=13, max_size=16)), max_size=40))
def test_vectorised_check_agrees_with_stdnum(values: list[str]) -> None:
    import pyarrow as pa

    from hygie.identity.nir import valid_nirs

    got = valid_nirs(pa.array(values, pa.string())).to_pylist()
    assert got == [stdnum_nir.is_valid(v) and len(v) == 15 for v in values]


@given(nirs(), st.integers(0, 14), st.sampled_from("0123456789AB"))
def test_vectorised_check_catches_single_character_changes(nir: str, pos: int, char: str) -> None:
    import pyarrow as pa

    from hygie.identity.nir import valid_nirs

    changed = nir[:pos] + char + nir[pos + 1 :]
    assert valid_nirs(pa.array([changed])).to_pylist() == [stdnum_nir.is_valid(changed)]


@given(st.lists(st.binary(min_size=32, max_size=32), max_size=20))
def test_pseudonym_encoding_is_standard_base32(digests: list[bytes]) -> None:
    import base64

    from hygie.identity.pseudonym import PSEUDONYM_LENGTH, encode_pseudonyms

    assert encode_pseudonyms(digests) == [base64.b32encode(d[:15]).decode()[:PSEUDONYM_LENGTH] for d in digests]
