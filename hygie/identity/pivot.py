# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The identity pivot index: finding a person of the vault from what an identity provider vouches for.

An OpenID Connect provider of the FranceConnect kind vouches for an *identity pivot*: family name, given names,
birth date, sex (``gender``), birth place (the INSEE code of the commune) and birth country. The vault holds the
first three in clear inside each sealed record, and the last three are encoded in the NIR (sex = 1st digit;
birth département + commune = digits 6 to 10; ``99`` + a country code for people born abroad).

The index holds, per vault record, ``HMAC(identity-pivot key, canonical pivot)`` next to the person's blind
index (``person_index``): a lookup is one keyed equality query, never a decryption of the vault, and the table
says nothing about anyone without the custody key. No pivot value is ever stored or logged in clear.

Canonical form (``canonical_pivot``): names folded (NFKD, letters and digits only, case-folded), the *first*
given name only (the vault holds one given name, the provider all of them), birth date ``YYYY-MM-DD``, sex
``1``/``2``, birth place ``DDCCC`` (empty for people born abroad), birth country (``99100`` for France).
People born in Corsica before 1976 carry département ``20`` in their NIR; the provider names today's ``2A`` or
``2B``: both forms are indexed. Not matched (they take the postal code path): people born in French Algeria,
Morocco or Tunisia before independence (NIR départements 91 to 95 before 1968, and 96), whom the provider gives a
birth country, and holders of a provisional NIR (sex digit 7 or 8).

Completeness: ``identity_pivot_mark`` holds the last vault record id the index covers. :meth:`IdentityVault.store`
keeps it current as identities arrive; data older than the index is covered by :func:`rebuild`
(``hygie vault rebuild-pivot``), and a lookup on an index that lags refuses to answer (a short index could find
one person where two match).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, LargeBinary, delete, func, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from hygie.db import Base, bulk
from hygie.keys import KeyCustody, KeyPurpose

if TYPE_CHECKING:
    from hygie.identity.vault import Identity, IdentityVault

PIVOT_KEY = "identity-pivot"
"""Custody PSEUDONYM key of the pivot index."""
PIVOT_LABEL = b"hygie/identity-pivot/v1|"
FRANCE = "99100"
"""INSEE code of France as a birth country."""
SEPARATOR = "\x1f"
REBUILD_BATCH = 5000
CATCH_UP_LIMIT = 10_000
"""Records a lookup indexes on the fly when the index lags; beyond it the operator runs the rebuild."""


class PivotIndexIncomplete(Exception):
    """The pivot index does not cover every vault record: run ``hygie vault rebuild-pivot``."""


class IdentityPivotRow(Base):
    """One keyed pivot of one vault record (a person has one per record version, two if born in Corsica < 1976)."""

    __tablename__ = "identity_pivot"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pivot: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False, index=True)
    person_index: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)


class IdentityPivotMark(Base):
    """The last vault record (``identity_record.id``) the pivot index covers; one row, id 1."""

    __tablename__ = "identity_pivot_mark"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_record_id: Mapped[int] = mapped_column(Integer, nullable=False)


def fold(text: str) -> str:
    """Letters and digits only, accents removed, case-folded: ``Lefèvre-Dupont`` and ``LEFEVRE DUPONT`` agree."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isalnum()).casefold()


def first_given_name(given: str) -> str:
    parts = given.split()
    return fold(parts[0]) if parts else ""


@dataclass(frozen=True)
class Pivot:
    family_name: str
    given_name: str
    birth_date: str
    sex: str
    birth_place: str
    birth_country: str

    def message(self) -> bytes:
        fields = (self.family_name, self.given_name, self.birth_date, self.sex, self.birth_place, self.birth_country)
        return PIVOT_LABEL + SEPARATOR.join(fields).encode()


def canonical_pivot(
    *, family_name: str, given_name: str, birth_date: str, sex: str, birth_place: str, birth_country: str
) -> Pivot | None:
    """The canonical pivot, or None when a part is missing or malformed (such a person is never matched)."""
    family, given = fold(family_name), first_given_name(given_name)
    country = birth_country.strip().upper()
    place = birth_place.strip().upper() if country == FRANCE else ""
    if not family or not given or sex not in ("1", "2") or len(birth_date) != 10 or len(country) != 5:
        return None
    if country == FRANCE and len(place) != 5:
        return None
    return Pivot(family, given, birth_date, sex, place, country)


def pivots_of_record(nir: str, last_name: str, first_name: str, birth_date: str) -> list[Pivot]:
    """The canonical pivots of a vault record: birth place and sex from the NIR (see the module docstring)."""
    nir = nir.strip().upper()
    if len(nir) != 15 or nir[0] not in "12":
        return []
    department, commune = nir[5:7], nir[7:10]
    if department == "99":
        places = [("", "99" + commune)]
    elif department == "96" or (department in ("91", "92", "93", "94", "95") and _born_before(birth_date, 1968)):
        places = []  # born in North Africa before independence: the provider names a country we cannot derive
    elif department == "20":
        places = [("2A" + commune, FRANCE), ("2B" + commune, FRANCE)]
    else:
        places = [(department + commune, FRANCE)]
    found = []
    for place, country in places:
        pivot = canonical_pivot(family_name=last_name, given_name=first_name, birth_date=birth_date, sex=nir[0],
                                birth_place=place, birth_country=country)  # fmt: skip
        if pivot is not None:
            found.append(pivot)
    return found


def _born_before(birth_date: str, year: int) -> bool:
    return birth_date[:4].isdigit() and int(birth_date[:4]) < year


GENDER_SEX = {"male": "1", "female": "2"}
"""OpenID Connect ``gender`` as the NIR's sex digit."""


def pivot_of_claims(claims: Mapping[str, Any]) -> Pivot | None:
    """The canonical pivot of a provider's claims (FranceConnect names), or None when one is missing."""

    def text(name: str) -> str:
        value = claims.get(name)
        return value if isinstance(value, str) else ""

    return canonical_pivot(
        family_name=text("family_name"),
        given_name=text("given_name"),
        birth_date=text("birthdate"),
        sex=GENDER_SEX.get(text("gender").lower(), ""),
        birth_place=text("birthplace"),
        birth_country=text("birthcountry"),
    )


def keyed(custody: KeyCustody, pivots: Sequence[Pivot]) -> list[bytes]:
    custody.ensure(PIVOT_KEY, KeyPurpose.PSEUDONYM)
    return custody.mac(PIVOT_KEY, [p.message() for p in pivots]) if pivots else []


def pivot_rows(custody: KeyCustody, records: Iterable[tuple[bytes, str, str, str, str]]) -> list[dict[str, bytes]]:
    """Rows of ``identity_pivot`` for records given as (person_index, nir, last_name, first_name, birth_date)."""
    owners: list[bytes] = []
    pivots: list[Pivot] = []
    for person_index, nir, last_name, first_name, birth_date in records:
        for pivot in pivots_of_record(nir, last_name, first_name, birth_date):
            owners.append(person_index)
            pivots.append(pivot)
    return [{"pivot": k, "person_index": i} for k, i in zip(keyed(custody, pivots), owners, strict=True)]


def _last_indexed(session: Session) -> int | None:
    mark = session.get(IdentityPivotMark, 1)
    return None if mark is None else mark.last_record_id


def _set_mark(session: Session, last_record_id: int) -> None:
    mark = session.get(IdentityPivotMark, 1)
    if mark is None:
        session.add(IdentityPivotMark(id=1, last_record_id=last_record_id))
    else:
        mark.last_record_id = last_record_id
    session.flush()


def newest_record_id(session: Session) -> int:
    from hygie.identity.vault import IdentityRow

    return int(session.scalar(select(func.max(IdentityRow.id))) or 0)


def store_rows(session: Session, rows: list[dict[str, bytes]], before: int) -> None:
    """Called by :meth:`IdentityVault.store` in its transaction: the pivots of the records just inserted. The mark
    moves on only if it covered every record before them (``before``, the newest record id then)."""
    if rows:
        # In key order (each insert beside the previous one in the pivot index), through the driver (COPY on
        # PostgreSQL).
        ordered = sorted((r["pivot"], r["person_index"]) for r in rows)
        bulk.insert(session, IdentityPivotRow.__tablename__, ("pivot", "person_index"), ordered)
    last = _last_indexed(session)
    if (last or 0) >= before:
        _set_mark(session, newest_record_id(session))


def catch_up(session: Session, custody: KeyCustody, vault: IdentityVault, limit: int | None = None) -> int:
    """Index the vault records after the mark (all, or at most ``limit`` before refusing); returns how many.

    Raises :class:`PivotIndexIncomplete` when more than ``limit`` records are missing."""
    after = _last_indexed(session) or 0
    newest = newest_record_id(session)
    if limit is not None and newest - after > limit:
        raise PivotIndexIncomplete(
            f"the identity pivot index lags the vault by up to {newest - after} records: run "
            "`hygie vault rebuild-pivot`"
        )
    done = 0
    while True:
        records = vault.records(after, REBUILD_BATCH)
        if not records:
            break
        rows = pivot_rows(custody, ((i, r.nir, r.last_name, r.first_name, r.birth_date) for _, i, r in records))
        if rows:
            session.connection().execute(insert(IdentityPivotRow.__table__), rows)  # type: ignore[arg-type]
        after = records[-1][0]
        done += len(records)
        _set_mark(session, after)
    return done


def rebuild(session: Session, custody: KeyCustody, vault: IdentityVault, *, from_scratch: bool = False) -> int:
    """Index every vault record not yet covered (all of them with ``from_scratch``, e.g. after damage); returns
    the number of records indexed. The caller commits."""
    if from_scratch:
        session.execute(delete(IdentityPivotRow))
        session.execute(delete(IdentityPivotMark))
        session.flush()
    return catch_up(session, custody, vault)


def candidates(session: Session, custody: KeyCustody, vault: IdentityVault, pivot: Pivot) -> list[bytes]:
    """The blind indexes of the people whose *current* vault identity has this pivot (keyed lookups only: one
    equality query, then one decryption per candidate to confirm it is the person's newest record)."""
    catch_up(session, custody, vault, limit=CATCH_UP_LIMIT)
    (key,) = keyed(custody, [pivot])
    found = list(
        dict.fromkeys(session.scalars(select(IdentityPivotRow.person_index).where(IdentityPivotRow.pivot == key)))
    )
    confirmed = []
    for person_index, identity in vault.identities_of([bytes(i) for i in found]).items():
        if pivot in _pivots_of_identity(identity):
            confirmed.append(person_index)
    return confirmed


def _pivots_of_identity(identity: Identity) -> list[Pivot]:
    return pivots_of_record(identity.nir, identity.last_name, identity.first_name, identity.birth_date)
