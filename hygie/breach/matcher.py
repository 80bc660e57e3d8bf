# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Match each row of a leak to a person of the identity vault, with a confidence.

A valid NIR finds its person through the vault's keyed blind index; the row's name and birth date must then
agree with the record, or the row is a conflict (one person's NIR with another's name) and goes to review.
Without a usable NIR, the row's birth date and names give keyed blocking keys (see
:mod:`hygie.breach.blocking`); the few people in those blocks are decrypted and scored on their names
(accents, case, hyphens and swapped first/last names folded away, typos scored by edit distance) and
postcode. A match is automatic only when it is both strong and clearly ahead of the next candidate.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum

from rapidfuzz import fuzz
from sqlalchemy.orm import Session

from hygie.breach import blocking
from hygie.breach.columns import Columns
from hygie.breach.mapping import CATEGORY, Column, Field
from hygie.breach.normalise import fold, parse_date, postcode, repair_nir
from hygie.identity.pseudonym import Pseudonymiser
from hygie.identity.vault import Identity, IdentityVault
from hygie.keys import KeyCustody


class Status(StrEnum):
    MATCHED = "matched"
    AMBIGUOUS = "ambiguous"
    UNMATCHED = "unmatched"
    INVALID = "invalid"


@dataclass
class Outcome:
    row: int
    status: Status
    confidence: float
    reason: str
    person_index: bytes | None = None
    candidates: int = 0
    categories: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Parsed:
    """A row's identifying values, normalised (in memory only)."""

    row: int
    nir: str | None
    nir_given: bool
    names: list[str]
    birth_date: str | None
    postcode: str | None
    categories: list[str]


MARGIN = 0.08
"""How far a name-and-birth-date match must lead the next candidate to be automatic."""
REVIEW_FLOOR = 0.75
"""Below this a candidate is no match at all; between it and the match score the row goes to review."""


def parse_row(number: int, cells: list[str], columns: list[Column]) -> Parsed:
    return RowParser(columns)(number, cells)


class RowParser:
    """Reads rows with one column mapping. The mapping is turned once into a plan keyed by plain strings: an
    enum member's hash is a Python call, and a leak has hundreds of thousands of rows of a dozen cells."""

    def __init__(self, columns: list[Column]) -> None:
        self._columns = columns
        self._plan = [(c.column, c.field.value, CATEGORY[c.field]) for c in columns if c.field is not Field.IGNORE]

    def parse(self, first_number: int, rows: list[list[str]]) -> list[Parsed]:
        """Rows numbered from ``first_number``, parsed column by column (:mod:`hygie.breach.columns`): the same
        result as calling the parser on each row, at a fraction of the cost."""
        c = Columns(self._columns, rows)
        return [
            Parsed(first_number + k, nir, given, names, born, post, categories)
            for k, (nir, given, names, born, post, categories) in enumerate(
                zip(c.nir, c.nir_given, c.names, c.birth_date, c.postcode, c.categories, strict=True)
            )
        ]

    def __call__(self, number: int, cells: list[str]) -> Parsed:
        values: dict[str, str] = {}
        categories: set[str] = set()
        width = len(cells)
        for column, name, category in self._plan:
            value = cells[column].strip() if column < width else ""
            if value:
                categories.add(category)
                values.setdefault(name, value)
        raw_nir = values.get("nir", "")
        names: list[str] = []
        if "last_name" in values or "first_name" in values:
            names = [fold(values.get("last_name", "")), fold(values.get("first_name", ""))]
        elif "full_name" in values:
            names = fold(values["full_name"]).split()
        names = [n for n in names if n]
        born = parse_date(values.get("birth_date", ""))
        return Parsed(
            row=number,
            nir=repair_nir(raw_nir) if raw_nir else None,
            nir_given=bool(raw_nir),
            names=names,
            birth_date=born.isoformat() if born else None,
            postcode=postcode(values.get("postcode", "")),
            categories=sorted(categories),
        )


def name_score(names: list[str], identity: Identity) -> float:
    """0-1 similarity of a row's names to a record's, whatever their order (token sort), typos included."""
    mine = " ".join(names)
    theirs = f"{fold(identity.last_name)} {fold(identity.first_name)}"
    return max(fuzz.token_sort_ratio(mine, theirs), fuzz.token_set_ratio(mine, theirs) - 5) / 100.0


def _score(p: Parsed, identity: Identity) -> float:
    s = name_score(p.names, identity)
    if p.postcode and identity.postcode:
        s += 0.04 if postcode(identity.postcode) == p.postcode else -0.04
    return max(0.0, min(1.0, s))


class Matcher:
    def __init__(self, session: Session, custody: KeyCustody, vault: IdentityVault, pseudonymiser: Pseudonymiser,
                 threshold: float) -> None:  # fmt: skip
        self._session = session
        self._custody = custody
        self._vault = vault
        self._pseudonymiser = pseudonymiser
        self._threshold = threshold
        self.timings: dict[str, float] = defaultdict(float)
        """Seconds spent per phase ('nir', 'blocking', 'decrypt+score'), for the benchmark's time split."""

    @contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] += time.perf_counter() - started

    def match(self, rows: list[Parsed]) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}
        by_name: list[tuple[Parsed, Outcome | None]] = []
        with self._phase("nir"):
            nirs = [p.nir for p in rows if p.nir]
            indexes = dict(zip(nirs, self._pseudonymiser.indexes(nirs, cache=False), strict=True))
            by_nir = self._vault.identities_of(indexes.values())
            for p in rows:
                if p.nir and indexes[p.nir] in by_nir:
                    outcomes[p.row] = self._check_nir_match(p, indexes[p.nir], by_nir[indexes[p.nir]])
                elif p.birth_date and p.names:
                    # A valid NIR that is not in the vault, or none: names and birth date decide, and a NIR that
                    # points nowhere while the names point at someone is a conflict for review.
                    note = Outcome(p.row, Status.UNMATCHED, 0.0, "valid NIR not in the vault") if p.nir else None
                    by_name.append((p, note))
                elif p.nir:
                    outcomes[p.row] = Outcome(p.row, Status.UNMATCHED, 0.0, "valid NIR not in the vault")
                else:
                    reason = "no valid NIR, and no name with a birth date" if p.nir_given else "no usable identifier"
                    outcomes[p.row] = Outcome(p.row, Status.INVALID, 0.0, reason)
        for p, o in self._by_names(by_name):
            outcomes[p.row] = o
        for p in rows:
            outcomes[p.row].categories = p.categories
        return [outcomes[p.row] for p in rows]

    def _check_nir_match(self, p: Parsed, person_index: bytes, identity: Identity) -> Outcome:
        date_agrees = p.birth_date is None or p.birth_date == identity.birth_date
        if not p.names:
            if not date_agrees:
                return Outcome(p.row, Status.AMBIGUOUS, 0.5, "NIR and birth date disagree", person_index, 1)
            return Outcome(p.row, Status.MATCHED, 0.97 if p.birth_date else 0.93, "NIR", person_index, 1)
        s = name_score(p.names, identity)
        if s >= 0.85 and date_agrees:
            return Outcome(p.row, Status.MATCHED, round(0.9 + 0.1 * s, 3), "NIR and name", person_index, 1)
        if s >= 0.7 and p.birth_date == identity.birth_date:
            return Outcome(p.row, Status.MATCHED, 0.9, "NIR and birth date, name close", person_index, 1)
        if s >= 0.85:
            return Outcome(p.row, Status.AMBIGUOUS, 0.6, "NIR and name agree, birth date does not", person_index, 1)
        return Outcome(p.row, Status.AMBIGUOUS, round(0.5 * s, 3), "NIR of a person whose name differs",
                       person_index, 1)  # fmt: skip

    def _by_names(self, rows: list[tuple[Parsed, Outcome | None]]) -> list[tuple[Parsed, Outcome]]:
        with self._phase("blocking"):
            messages = [blocking.block_messages(p.birth_date or "", p.names, p.postcode) for p, _ in rows]
            flat = [m for ms in messages for m in ms]
            keys = dict(zip(flat, blocking.block_keys(self._custody, flat), strict=True))
            blocks = blocking.candidates(self._session, list(keys.values()))
            # Every person of every block of the row: the blocks are small (a pair of initials, a full name or a
            # postcode with a birth date), so the row's own person and whoever could be mistaken for them are
            # decrypted and scored together, and a doubt is never settled by skipping someone.
            groups: list[set[bytes]] = []
            for ms in messages:
                group: set[bytes] = set()
                for m in ms:
                    group.update(blocks.get(keys[m], ()))
                groups.append(group)
        with self._phase("decrypt+score"):
            identities = self._vault.identities_of([i for group in groups for i in group])
            return self._decide(rows, groups, identities)

    def _decide(self, rows: list[tuple[Parsed, Outcome | None]], people: list[set[bytes]],
                identities: dict[bytes, Identity]) -> list[tuple[Parsed, Outcome]]:  # fmt: skip
        out: list[tuple[Parsed, Outcome]] = []
        for (p, note), group in zip(rows, people, strict=True):
            scored = sorted(
                ((_score(p, identities[i]), i) for i in group if i in identities
                 and identities[i].birth_date == p.birth_date),
                reverse=True,
            )  # fmt: skip
            if not scored or scored[0][0] < REVIEW_FLOOR:
                out.append((p, note or Outcome(p.row, Status.UNMATCHED, 0.0, "nobody with this name and birth date")))
                continue
            best, person_index = scored[0]
            second = scored[1][0] if len(scored) > 1 else 0.0
            if note is not None:
                out.append((p, Outcome(p.row, Status.AMBIGUOUS, round(best / 2, 3),
                                       "NIR not in the vault, name and birth date match someone", person_index,
                                       len(scored))))  # fmt: skip
            elif best >= self._threshold and best - second >= MARGIN:
                confidence = round(min(best, 0.99) * (0.97 if p.postcode is None else 1.0), 3)
                out.append((p, Outcome(p.row, Status.MATCHED, max(confidence, self._threshold), "name and birth date",
                                       person_index, len(scored))))  # fmt: skip
            else:
                reason = "several people fit" if best - second < MARGIN else "name close but not certain"
                out.append((p, Outcome(p.row, Status.AMBIGUOUS, round(best - 0.1, 3), reason, person_index,
                                       len(scored))))  # fmt: skip
        return out
