# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""What a project may ask for: lawful purposes, the columns a view can hold, potential identifiers and the
coarse values given by default, population criteria.

Purposes follow the French public-health code, art. L1461-1 (III lists the purposes the national health data
system serves; V forbids two uses outright).
"""

from __future__ import annotations

import csv
from datetime import date
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hygie.i18n import N_
from hygie.ingest.contract import BENEFICIARY_TABLE, CARE_TABLE, DCIR_KEYS, DETAIL_TABLES, PSEUDONYM_COLUMN, TABLES


class Role(StrEnum):
    CITIZEN = "citizen"
    RESEARCHER = "researcher"
    REVIEWER = "reviewer"
    DPO = "dpo"
    OPERATOR = "operator"
    AUDITOR = "auditor"


STAFF_ROLES = frozenset(Role) - {Role.CITIZEN}
"""Roles that must sign in with a second factor (TOTP)."""


def reviewing_roles(dpo_may_review: bool) -> frozenset[Role]:
    """Roles whose approval counts towards a project's reviews and who check analysis outputs in the airlock:
    reviewers, and the DPO only when the setting ``dpo_may_review`` says so (by default the DPO oversees and does
    not review). The one rule both project decisions and output checks read."""
    return frozenset({Role.REVIEWER, Role.DPO}) if dpo_may_review else frozenset({Role.REVIEWER})


class Purpose(StrEnum):
    """Lawful purposes, art. L1461-1 III of the public-health code."""

    HEALTH_INFORMATION = "health_information"
    HEALTH_POLICY = "health_policy"
    EXPENDITURE = "expenditure"
    PROFESSIONAL_INFORMATION = "professional_information"
    SURVEILLANCE = "surveillance"
    RESEARCH = "research"


PURPOSE_LABELS: dict[str, str] = {
    Purpose.HEALTH_INFORMATION: "Information sur la santé, l'offre de soins, la prise en charge médico-sociale "
    "et leur qualité",
    Purpose.HEALTH_POLICY: "Définition, mise en œuvre et évaluation des politiques de santé et de protection sociale",
    Purpose.EXPENDITURE: "Connaissance des dépenses de santé, d'assurance maladie et médico-sociales",
    Purpose.PROFESSIONAL_INFORMATION: "Information des professionnels, structures et établissements de santé ou "
    "médico-sociaux sur leur activité",
    Purpose.SURVEILLANCE: "Surveillance, veille et sécurité sanitaires",
    Purpose.RESEARCH: "Recherche, études, évaluation et innovation dans les domaines de la santé et de la prise en "
    "charge médico-sociale",
}

FORBIDDEN_PURPOSES: dict[str, str] = {
    "product_promotion": "promotion of health products to health professionals or establishments (art. L1461-1 V, 1°)",
    "insurance_exclusion": "excluding guarantees from insurance contracts or changing contributions or premiums "
    "of an individual or group (art. L1461-1 V, 2°)",
}


class PotentialIdentifier(StrEnum):
    """Values that, combined, single people out. A project may have at most one (a setting)."""

    RESIDENCE_COMMUNE = "residence_commune"
    BIRTH_MONTH = "birth_month"
    CARE_DATES = "care_dates"
    DEATH_DATE = "death_date"
    DEATH_COMMUNE = "death_commune"


CLAIM_KEY = "CLE_DCI_JNT"
"""In a view, the nine DCIR keys are replaced by one project-specific claim key joining care to details."""

DATE_COLUMNS: dict[str, tuple[str, ...]] = {
    CARE_TABLE: ("EXE_SOI_DTD", "EXE_SOI_DTF", "PRE_PRE_DTD"),
    BENEFICIARY_TABLE: ("BEN_DTE_INS", "BEN_DTE_MAJ"),
}

GATED_COLUMNS: dict[PotentialIdentifier, dict[str, tuple[str, ...]]] = {
    PotentialIdentifier.RESIDENCE_COMMUNE: {BENEFICIARY_TABLE: ("BEN_RES_COM",), CARE_TABLE: ("BEN_RES_COM",)},
    PotentialIdentifier.BIRTH_MONTH: {BENEFICIARY_TABLE: ("BEN_NAI_MOI",)},
    PotentialIdentifier.CARE_DATES: {CARE_TABLE: ("EXE_SOI_DTD", "EXE_SOI_DTF", "PRE_PRE_DTD")},
    PotentialIdentifier.DEATH_DATE: {BENEFICIARY_TABLE: ("BEN_DCD_DTE",)},
    PotentialIdentifier.DEATH_COMMUNE: {},
}
"""Which columns each potential identifier unlocks in exact form."""

COARSENED: dict[str, dict[str, str]] = {
    BENEFICIARY_TABLE: {"BEN_DCD_DTE": "month"},
    CARE_TABLE: {"EXE_SOI_DTD": "month", "EXE_SOI_DTF": "month", "PRE_PRE_DTD": "month"},
}
"""Gated columns a project may still have without the identifier, generalised: dates cut to the first day of
their month. Gated columns absent here (commune, birth month) are simply not available without it."""


@cache
def selectable_columns() -> dict[str, tuple[str, ...]]:
    """Columns a view may hold, per table: the stored columns without the DCIR keys, plus the claim key."""
    out: dict[str, tuple[str, ...]] = {}
    for name, contract in TABLES.items():
        columns = [c for c in contract.stored_columns if c not in DCIR_KEYS]
        if name == CARE_TABLE or name in DETAIL_TABLES:
            columns.insert(0, CLAIM_KEY)
        out[name] = tuple(columns)
    return out


def gated_by(table: str, column: str) -> PotentialIdentifier | None:
    for identifier, tables in GATED_COLUMNS.items():
        if column in tables.get(table, ()):
            return identifier
    return None


REFERENCE_DIR = Path(__file__).resolve().parent.parent / "reference"


@cache
def departements_by_region() -> dict[int, tuple[str, ...]]:
    """Region code -> département codes as the warehouse stores them (IR_DPT_V)."""
    out: dict[int, list[str]] = {}
    path = REFERENCE_DIR / "snds" / "nomenclatures" / "IR_DPT_V.csv"
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter=";"):
            out.setdefault(int(row["GEO_REG_COD"]), []).append(row["GEO_DPT_COD"])
    return {k: tuple(v) for k, v in out.items()}


Code = Annotated[str, Field(min_length=1, max_length=13, pattern=r"^[A-Z0-9]+$")]


class Population(BaseModel):
    """Who a view covers: people matching every criterion given, with their care in the period."""

    model_config = ConfigDict(extra="forbid")

    period_start: date
    period_end: date
    age_min: int | None = Field(default=None, ge=0, le=130, description="Age at the start of the period.")
    age_max: int | None = Field(default=None, ge=0, le=130)
    sexes: list[int] = Field(default_factory=list, description="1 male, 2 female (BEN_SEX_COD); empty: all.")
    departements: list[str] = Field(default_factory=list, description="Residence départements (BEN_RES_DPT).")
    regions: list[int] = Field(default_factory=list, description="Residence regions (IR_DPT_V.GEO_REG_COD).")
    drugs_atc: list[Code] = Field(
        default_factory=list, description="People dispensed a drug whose ATC code starts with one of these."
    )
    ccam_acts: list[Code] = Field(default_factory=list, description="People who had one of these CCAM acts.")
    exemption_codes: list[int] = Field(
        default_factory=list, description="People with care under one of these exemption reasons (EXO_MTF, ALD)."
    )

    @model_validator(mode="after")
    def _coherent(self) -> Population:
        if self.period_end < self.period_start:
            raise ValueError(N_("period_end is before period_start"))
        if self.age_min is not None and self.age_max is not None and self.age_max < self.age_min:
            raise ValueError(N_("age_max is below age_min"))
        if any(s not in (1, 2) for s in self.sexes):
            raise ValueError(N_("sexes holds codes other than 1 (male) and 2 (female)"))
        unknown = [r for r in self.regions if r not in departements_by_region()]
        if unknown:
            raise ValueError(N_("unknown region codes {codes} (IR_DPT_V.GEO_REG_COD)", codes=str(unknown)))
        known = {d for ds in departements_by_region().values() for d in ds}
        unknown_d = [d for d in self.departements if d not in known]
        if unknown_d:
            raise ValueError(
                N_("unknown département codes {codes} (IR_DPT_V.GEO_DPT_COD, e.g. '075')", codes=str(unknown_d))
            )
        return self

    def all_departements(self) -> list[str]:
        chosen = set(self.departements)
        for region in self.regions:
            chosen.update(departements_by_region()[region])
        return sorted(chosen)


class Scope(BaseModel):
    """What a project asks to see. Validation errors name the table or column at fault."""

    model_config = ConfigDict(extra="forbid")

    tables: dict[str, list[str]] = Field(description="Table -> columns. BEN_NIR_PSA is always included.")
    population: Population
    potential_identifiers: list[PotentialIdentifier] = Field(
        default_factory=list, description="At most one (policy setting max_potential_identifiers)."
    )

    @field_validator("tables")
    @classmethod
    def _known_columns(cls, tables: dict[str, list[str]]) -> dict[str, list[str]]:
        if not tables:
            raise ValueError(N_("a project must ask for at least one table"))
        catalogue = selectable_columns()
        for table, columns in tables.items():
            if table not in catalogue:
                raise ValueError(
                    N_("unknown table {table}; the tables are {tables}", table=repr(table), tables=", ".join(catalogue))
                )
            for column in columns:
                if column == PSEUDONYM_COLUMN:
                    continue
                if column in DCIR_KEYS:
                    raise ValueError(
                        N_(
                            "{table}.{column} is a DCIR technical key; ask for {claim} instead",
                            table=table,
                            column=column,
                            claim=CLAIM_KEY,
                        )
                    )
                if column not in catalogue[table]:
                    raise ValueError(N_("unknown column {table}.{column}", table=table, column=column))
            if len(set(columns)) != len(columns):
                raise ValueError(N_("{table} lists a column twice", table=table))
        return tables

    def gating_problems(self) -> list[str]:
        """Columns asked for in exact form without their potential identifier declared."""
        problems: list[str] = []
        for table, columns in self.tables.items():
            for column in columns:
                identifier = gated_by(table, column)
                if identifier is None or identifier in self.potential_identifiers:
                    continue
                if column in COARSENED.get(table, {}):
                    continue  # given coarsened
                problems.append(
                    N_(
                        "{table}.{column} is the potential identifier {identifier}: declare it in "
                        "potential_identifiers (at most one per project) or leave the column out",
                        table=table,
                        column=column,
                        identifier=repr(identifier.value),
                    )
                )
        return problems

    def column_form(self, table: str, column: str) -> str:
        """'exact', the generalisation applied ('month'), or 'forbidden' for a gated column that has no coarse
        form and whose potential identifier was not declared (callers must never write it)."""
        identifier = gated_by(table, column)
        if identifier is not None and identifier not in self.potential_identifiers:
            return COARSENED.get(table, {}).get(column, "forbidden")
        return "exact"
