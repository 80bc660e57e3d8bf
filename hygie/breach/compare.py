# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""How a leaked row's identifying cells agree with its candidate's vault identity, field by field, without saying
either value: ``exact``, ``close`` (with a 0-1 similarity), ``differs`` (with it), or ``missing`` on one side.

The DPO decides a row in review from these answers; the vault's values never leave this module (the identity is
decrypted in memory by the caller, compared here, and dropped). A full view of the identity is a separate,
two-person act (:meth:`hygie.breach.service.Incidents.request_reveal`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from rapidfuzz import fuzz

from hygie.breach.mapping import Column, Field
from hygie.breach.normalise import fold, parse_date, postcode, repair_nir
from hygie.identity.vault import Identity


class Agreement(StrEnum):
    EXACT = "exact"
    CLOSE = "close"
    DIFFERS = "differs"
    MISSING = "missing"


@dataclass(frozen=True)
class FieldAgreement:
    column: int
    header: str
    field: str
    agreement: Agreement
    score: float | None
    """Similarity 0-1 (two decimals) when both sides hold a value; None when one is missing."""
    missing_on: str | None
    """'leak' or 'vault' when agreement is 'missing'."""


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _phone(text: str) -> str:
    digits = _digits(text)
    if digits.startswith("0033"):
        digits = "0" + digits[4:]
    elif digits.startswith("33") and len(digits) == 11:
        digits = "0" + digits[2:]
    return digits


def _sorted_words(text: str) -> str:
    """Folded words in order: a full name agrees whichever name comes first."""
    return " ".join(sorted(fold(text).split()))


def _ratio(a: str, b: str) -> float:
    return fuzz.ratio(a, b) / 100.0


def _tokens(a: str, b: str) -> float:
    return fuzz.token_sort_ratio(a, b) / 100.0


def _date(leaked: str, vault: str) -> tuple[str, str, float]:
    mine = parse_date(leaked)
    if mine is None:
        return ("?", vault, 0.0)
    parts = [mine.year == int(vault[:4]), mine.month == int(vault[5:7]), mine.day == int(vault[8:10])]
    return (mine.isoformat(), vault, sum(parts) / 3)


def _sex(leaked: str, nir: str) -> tuple[str, str, float]:
    value = fold(leaked)
    mine = "1" if value in {"1", "M", "H", "HOMME", "MASCULIN", "MALE"} else "2" if value in {
        "2", "F", "FEMME", "FEMININ", "FEMALE"} else "?"  # fmt: skip
    return (mine, nir[:1], 1.0 if mine == nir[:1] else 0.0)


Compared = tuple[str, str, float] | None
"""Both sides normalised, and their similarity; None when the vault holds nothing to compare with."""


def _pair(leaked: str, vault: str | None, norm: Callable[[str], str], score: Callable[[str, str], float]) -> Compared:
    if not vault or not norm(vault):
        return None
    a, b = norm(leaked), norm(vault)
    return (a, b, score(a, b))


def _compare(field: Field, leaked: str, identity: Identity) -> Compared:
    i = identity
    if field is Field.NIR:
        return _pair(leaked, i.nir, lambda v: repair_nir(v) or _digits(v), _ratio)
    if field is Field.LAST_NAME:
        return _pair(leaked, i.last_name, fold, _ratio)
    if field is Field.FIRST_NAME:
        return _pair(leaked, i.first_name, fold, _ratio)
    if field is Field.FULL_NAME:
        return _pair(leaked, f"{i.last_name} {i.first_name}", _sorted_words, _ratio)
    if field is Field.BIRTH_DATE:
        return _date(leaked, i.birth_date) if i.birth_date else None
    if field is Field.POSTCODE:
        return _pair(leaked, i.postcode, lambda v: postcode(v) or _digits(v), _ratio)
    if field is Field.EMAIL:
        return _pair(leaked, i.email, lambda v: v.strip().lower(), _ratio)
    if field is Field.PHONE:
        return _pair(leaked, i.phone, _phone, _ratio)
    if field is Field.ADDRESS:
        return _pair(leaked, i.address, fold, _tokens)
    if field is Field.COMMUNE:
        return _pair(leaked, i.commune, fold, _ratio)
    if field is Field.SEX:
        return _sex(leaked, i.nir) if i.nir else None
    raise ValueError(f"{field} is not an identifying field")


IDENTIFYING = (Field.NIR, Field.LAST_NAME, Field.FIRST_NAME, Field.FULL_NAME, Field.BIRTH_DATE, Field.POSTCODE,
               Field.EMAIL, Field.PHONE, Field.ADDRESS, Field.COMMUNE, Field.SEX)  # fmt: skip
"""The fields compared; the others (health data, free text) say nothing about who the row is."""


def compare(cells: list[tuple[Column, str]], identity: Identity, close: float) -> list[FieldAgreement]:
    """Each identifying cell of a leaked row against the candidate: agreement and similarity, never a value."""
    out: list[FieldAgreement] = []
    for column, value in cells:
        if column.field not in IDENTIFYING:
            continue
        agreement, score, missing_on = _agreement(column.field, value, identity, close)
        out.append(FieldAgreement(column.column, column.header, column.field.value, agreement, score, missing_on))
    return out


def _agreement(
    field: Field, value: str, identity: Identity, close: float
) -> tuple[Agreement, float | None, str | None]:
    if not value.strip():
        return Agreement.MISSING, None, "leak"
    compared = _compare(field, value, identity)
    if compared is None:
        return Agreement.MISSING, None, "vault"
    mine, theirs, score = compared
    if mine and mine == theirs:
        return Agreement.EXACT, 1.0, None
    score = round(min(score, 0.99), 2)
    return (Agreement.CLOSE if score >= close else Agreement.DIFFERS), score, None
