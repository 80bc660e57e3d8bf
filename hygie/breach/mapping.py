# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Which column of a leaked file holds what: header synonyms (French and English) checked against content.

A header can lie (columns swapped by whoever assembled the leak) or be missing; content rarely lies about
NIRs, e-mail addresses, dates and postcodes. So a column whose content is clearly one of those kinds takes
that field whatever its header says; names and free-text columns keep what their header says. The DPO sees
the mapping (headers and fields, never cell values) and may correct it, then re-run the matching.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from hygie.breach.normalise import fold, nir_like, parse_date, postcode, repair_nir


class Field(StrEnum):
    NIR = "nir"
    LAST_NAME = "last_name"
    FIRST_NAME = "first_name"
    FULL_NAME = "full_name"
    BIRTH_DATE = "birth_date"
    POSTCODE = "postcode"
    EMAIL = "email"
    PHONE = "phone"
    ADDRESS = "address"
    COMMUNE = "commune"
    SEX = "sex"
    BLOOD_GROUP = "blood_group"
    DOCTOR = "doctor"
    INSURER = "insurer"
    DIAGNOSIS = "diagnosis"
    TREATMENT = "treatment"
    COMMENT = "comment"
    OTHER = "other"
    IGNORE = "ignore"
    """Set by the DPO for a column that exposes nothing about a person (a row number, an export date)."""


SYNONYMS: dict[Field, tuple[str, ...]] = {
    Field.NIR: ("nir", "ben nir", "numero securite sociale", "n securite sociale", "no securite sociale", "nss",
                "secu", "num secu", "numero secu", "n ss", "insee", "numero insee", "social security number",
                "ssn", "matricule", "numero assure", "n assure"),
    Field.LAST_NAME: ("nom", "nom de famille", "nom patient", "nom naissance", "nom d usage", "nom usage",
                      "last name", "lastname", "surname", "family name", "patient last name"),
    Field.FIRST_NAME: ("prenom", "prenoms", "prenom patient", "first name", "firstname", "given name", "forename"),
    Field.FULL_NAME: ("patient", "nom complet", "nom prenom", "identite", "full name", "name", "patient name"),
    Field.BIRTH_DATE: ("date naissance", "date de naissance", "ddn", "date naiss", "naissance", "ne le", "nee le",
                       "dob", "birth date", "birthdate", "date of birth", "birthday"),
    Field.POSTCODE: ("code postal", "cp", "postcode", "post code", "zip", "zip code", "postal code", "code post"),
    Field.EMAIL: ("email", "e mail", "mail", "courriel", "adresse mail", "adresse email", "adresse e mail"),
    Field.PHONE: ("telephone", "tel", "phone", "portable", "mobile", "phone number", "numero telephone", "gsm"),
    Field.ADDRESS: ("adresse", "address", "rue", "street", "adresse postale", "voie"),
    Field.COMMUNE: ("commune", "ville", "city", "town", "localite"),
    Field.SEX: ("sexe", "sex", "genre", "gender", "civilite"),
    Field.BLOOD_GROUP: ("groupe sanguin", "blood group", "blood type", "gs", "groupe", "rhesus", "abo"),
    Field.DOCTOR: ("medecin", "docteur", "doctor", "physician", "medecin traitant", "prescripteur", "gp",
                   "praticien"),
    Field.INSURER: ("mutuelle", "assureur", "insurer", "insurance", "complementaire", "organisme", "caisse",
                    "regime"),
    Field.DIAGNOSIS: ("diagnostic", "diagnosis", "pathologie", "maladie", "condition", "motif", "analyse",
                      "resultat", "result", "examen"),
    Field.TREATMENT: ("traitement", "traitements", "treatment", "treatments", "medicaments", "medication",
                      "ordonnance", "prescription", "drugs"),
    Field.COMMENT: ("commentaire", "commentaires", "comment", "comments", "notes", "note", "remarque", "observation",
                    "observations"),
}  # fmt: skip

CATEGORY: dict[Field, str] = {
    Field.NIR: "social security number",
    Field.LAST_NAME: "name",
    Field.FIRST_NAME: "name",
    Field.FULL_NAME: "name",
    Field.BIRTH_DATE: "birth date",
    Field.POSTCODE: "postal address",
    Field.ADDRESS: "postal address",
    Field.COMMUNE: "postal address",
    Field.EMAIL: "e-mail address",
    Field.PHONE: "phone number",
    Field.SEX: "sex",
    Field.BLOOD_GROUP: "health data (blood group)",
    Field.DOCTOR: "doctor",
    Field.INSURER: "insurer",
    Field.DIAGNOSIS: "health data (diagnoses, results)",
    Field.TREATMENT: "health data (treatments)",
    Field.COMMENT: "free text (may hold health data)",
    Field.OTHER: "other data",
}
HEALTH_CATEGORIES = frozenset(c for f, c in CATEGORY.items() if c.startswith(("health", "free text")))

_LOOKUP = {syn: field for field, syns in SYNONYMS.items() for syn in syns}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_PHONE = re.compile(r"^(\+33|0033|0)?\s*[1-9]([\s.\-]?\d{2}){4}$")
_BLOOD = re.compile(r"^(A|B|AB|O|0)\s*(\+|-|POS|NEG|RH\+|RH-)$", re.IGNORECASE)
_POSTCODE = re.compile(r"^\d{4,5}(\.0)?$")
_SAMPLE = 300


@dataclass
class Column:
    column: int
    header: str
    field: Field
    source: str
    """'header', 'content', 'dpo' or 'none'."""

    def as_json(self) -> dict[str, Any]:
        return {"column": self.column, "header": self.header, "field": self.field.value, "source": self.source}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Column:
        return cls(int(data["column"]), str(data["header"]), Field(data["field"]), str(data["source"]))


def header_field(header: str) -> Field | None:
    key = fold(header).lower()
    if key in _LOOKUP:
        return _LOOKUP[key]
    # 'Date de naissance du patient', 'N° de sécu': the longest synonym contained as whole words.
    hits = [(len(s), f) for s, f in _LOOKUP.items() if len(s) > 3 and re.search(rf"\b{re.escape(s)}\b", key)]
    return max(hits, key=lambda h: h[0])[1] if hits else None


def _share(values: list[str], test: Any) -> float:
    return sum(1 for v in values if test(v)) / len(values) if values else 0.0


def content_field(values: list[str], today: date | None = None) -> tuple[Field | None, float]:
    """The kind of a column from a sample of its non-empty cells, and how sure (share of cells that fit)."""
    if not values:
        return None, 0.0
    today = today or date.today()
    scores = {
        Field.NIR: _share(values, lambda v: repair_nir(v) is not None or nir_like(v)),
        Field.EMAIL: _share(values, lambda v: bool(_EMAIL.match(v))),
        Field.BLOOD_GROUP: _share(values, lambda v: bool(_BLOOD.match(v.strip()))),
        Field.POSTCODE: _share(values, lambda v: bool(_POSTCODE.match(v)) and postcode(v) is not None),
        Field.PHONE: _share(values, lambda v: bool(_PHONE.match(v.strip()))),
    }

    def birth(v: str) -> bool:
        d = parse_date(v, today)
        return d is not None and date(1890, 1, 1) <= d <= today

    scores[Field.BIRTH_DATE] = _share(values, birth)
    best = max(scores, key=lambda f: scores[f])
    return (best, scores[best]) if scores[best] > 0 else (None, 0.0)


_TYPED = frozenset({Field.NIR, Field.EMAIL, Field.BIRTH_DATE, Field.POSTCODE, Field.BLOOD_GROUP, Field.PHONE})


def infer(header: list[str] | None, rows: list[list[str]], today: date | None = None) -> list[Column]:
    width = max((len(r) for r in rows), default=len(header or []))
    columns: list[Column] = []
    for i in range(width):
        name = (header[i] if header and i < len(header) else "") or f"column {i + 1}"
        sample = [r[i] for r in rows[:_SAMPLE] if i < len(r) and r[i]]
        by_header = header_field(name) if header else None
        by_content, share = content_field(sample, today)
        # Strong content overrides a header (swapped columns), except a date column named as something else
        # than a birth date: 'date de prélèvement' is a date, not a birth date.
        strong = by_content is not None and share >= 0.8 and by_header != by_content
        if strong and by_content is not None and not (by_content is Field.BIRTH_DATE and by_header is not None):
            columns.append(Column(i, name, by_content, "content"))
            continue
        if by_header is not None:
            columns.append(Column(i, name, by_header, "header"))
        elif by_content is not None and share >= 0.6:
            columns.append(Column(i, name, by_content, "content"))
        else:
            columns.append(Column(i, name, Field.OTHER, "none"))
    _name_columns_from_content(columns, rows)
    _one_column_per_identifier(columns)
    return columns


def _name_columns_from_content(columns: list[Column], rows: list[list[str]]) -> None:
    """Without headers, two text columns next to each other are taken as names: the one mostly in capitals
    (the French convention for the family name) as the last name."""
    if any(c.field in (Field.LAST_NAME, Field.FIRST_NAME, Field.FULL_NAME) for c in columns):
        return
    text = []
    for c in columns:
        if c.field is not Field.OTHER:
            continue
        sample = [r[c.column] for r in rows[:_SAMPLE] if c.column < len(r) and r[c.column]]
        if sample and _share(sample, lambda v: bool(re.match(r"^[^\d@]{2,40}$", v))) > 0.9:
            text.append((c, _share(sample, lambda v: v == v.upper())))
    if len(text) >= 2:
        text.sort(key=lambda t: -t[1])
        text[0][0].field, text[0][0].source = Field.LAST_NAME, "content"
        text[1][0].field, text[1][0].source = Field.FIRST_NAME, "content"


def _one_column_per_identifier(columns: list[Column]) -> None:
    """Two columns claiming the NIR (or a birth date...): the first keeps it, the others are only exposed data."""
    seen: set[Field] = set()
    for c in columns:
        if c.field in _TYPED | {Field.LAST_NAME, Field.FIRST_NAME, Field.FULL_NAME} and c.field in seen:
            c.field, c.source = Field.OTHER, c.source
        seen.add(c.field)


def apply_corrections(columns: list[Column], corrections: dict[int, Field]) -> list[Column]:
    out = []
    for c in columns:
        if c.column in corrections:
            out.append(Column(c.column, c.header, corrections[c.column], "dpo"))
        else:
            out.append(c)
    return out
