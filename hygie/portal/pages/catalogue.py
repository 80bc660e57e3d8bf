# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""What the project form offers, in French: tables and columns (from the policy and the SNDS schemas), purposes,
potential identifiers with the columns each unlocks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

from hygie.governance.policy import (
    COARSENED,
    GATED_COLUMNS,
    PURPOSE_LABELS,
    REFERENCE_DIR,
    PotentialIdentifier,
    gated_by,
    selectable_columns,
)
from hygie.i18n import N_
from hygie.portal.pages.messages import fr

TABLE_LABELS = {
    "IR_BEN_R": fr(N_("Beneficiaries")),
    "ER_PRS_F": fr(N_("Reimbursed services")),
    "ER_PHA_F": fr(N_("Pharmacy (drugs dispensed)")),
    "ER_BIO_F": fr(N_("Laboratory tests")),
    "ER_CAM_F": fr(N_("Technical procedures (CCAM)")),
}

IDENTIFIER_LABELS = {
    PotentialIdentifier.RESIDENCE_COMMUNE: fr(N_("Commune of residence")),
    PotentialIdentifier.BIRTH_MONTH: fr(N_("Year and month of birth")),
    PotentialIdentifier.CARE_DATES: fr(N_("Exact dates of care")),
    PotentialIdentifier.DEATH_DATE: fr(N_("Exact date of death")),
    PotentialIdentifier.DEATH_COMMUNE: fr(N_("Commune of death")),
}

FORM_LABELS = {
    "month": fr(N_("given to the month without this identifier")),
    "forbidden": fr(N_("requires this identifier")),
}


@dataclass(frozen=True)
class ColumnChoice:
    table: str
    name: str
    label: str
    identifier: str | None
    """The potential identifier this column needs in exact form (French label), if any."""
    without: str | None
    """What the project gets without that identifier."""


@cache
def column_descriptions() -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for table in selectable_columns():
        path = REFERENCE_DIR / "snds" / "schemas" / f"{table}.json"
        if path.exists():
            for field in json.loads(path.read_text(encoding="utf-8"))["fields"]:
                out[(table, field["name"])] = str(field.get("description") or "").strip()
    return out


@cache
def column_choices() -> dict[str, list[ColumnChoice]]:
    descriptions = column_descriptions()
    out: dict[str, list[ColumnChoice]] = {}
    for table, columns in selectable_columns().items():
        choices = []
        for column in columns:
            identifier = gated_by(table, column)
            without = None
            if identifier is not None:
                without = FORM_LABELS["month"] if column in COARSENED.get(table, {}) else FORM_LABELS["forbidden"]
            label = descriptions.get((table, column)) or (
                fr(N_("Join key of the project's own")) if column == "CLE_DCI_JNT" else column
            )
            choices.append(
                ColumnChoice(table, column, label, IDENTIFIER_LABELS[identifier] if identifier else None, without)
            )
        out[table] = choices
    return out


def identifier_choices() -> list[tuple[str, str, list[str]]]:
    """(value, French label, the columns it unlocks) for each potential identifier."""
    return [
        (p.value, IDENTIFIER_LABELS[p], [f"{t}.{c}" for t, cs in GATED_COLUMNS[p].items() for c in cs])
        for p in PotentialIdentifier
    ]


def purposes() -> dict[str, str]:
    return {str(k): v for k, v in PURPOSE_LABELS.items()}
