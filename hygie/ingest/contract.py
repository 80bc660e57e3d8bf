# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The delivery contract: what a producer sends, table by table.

A delivery is a folder holding ``manifest.json`` and one UTF-8 CSV per table, ``<TABLE>.csv``, comma-separated
with a header row and columns named as in the SNDS schema (``hygie/reference/snds``). In place of the pseudonym
``BEN_NIR_PSA`` a producer sends the clear NIR in ``BEN_NIR``; ``IR_BEN_R.csv`` also carries the identity
columns. Empty means missing; dates are ``YYYY-MM-DD`` (``1600-01-01`` codes a missing date), year-months
``YYYY-MM``, months ``MM``, booleans ``0``/``1``.

The columns listed here are the hub's profile: the ones it accepts and stores. A file may leave out optional
columns (stored as missing) but may not bring columns the hub does not know.
"""

from __future__ import annotations

from dataclasses import dataclass

MANIFEST = "manifest.json"
NIR_COLUMN = "BEN_NIR"
PSEUDONYM_COLUMN = "BEN_NIR_PSA"
MISSING_DATE = "1600-01-01"

BENEFICIARY_TABLE = "IR_BEN_R"
CARE_TABLE = "ER_PRS_F"
DETAIL_TABLES = ("ER_PHA_F", "ER_BIO_F", "ER_CAM_F")

DCIR_KEYS = (
    "FLX_DIS_DTD",
    "FLX_TRT_DTD",
    "FLX_EMT_TYP",
    "FLX_EMT_NUM",
    "FLX_EMT_ORD",
    "ORG_CLE_NUM",
    "DCT_ORD_NUM",
    "PRS_ORD_NUM",
    "REM_TYP_AFF",
)
"""The nine keys joining ER_PRS_F to its detail tables."""

IDENTITY_COLUMNS = (
    "NOM",
    "PRENOM",
    "DATE_NAISSANCE",
    "ADRESSE",
    "CODE_POSTAL",
    "COMMUNE",
    "TELEPHONE",
    "EMAIL",
)
"""Direct identifiers carried by IR_BEN_R.csv besides the NIR; they go to the identity vault only."""


@dataclass(frozen=True)
class TableContract:
    name: str
    columns: tuple[str, ...]
    """Every column the hub accepts for this table, as delivered (BEN_NIR, not BEN_NIR_PSA)."""
    required: tuple[str, ...]
    """Columns that must be in the header and never empty."""

    @property
    def stored_columns(self) -> tuple[str, ...]:
        """Columns of the warehouse table: NIR replaced by the pseudonym, identity columns removed."""
        out = []
        for c in self.columns:
            if c in IDENTITY_COLUMNS:
                continue
            out.append(PSEUDONYM_COLUMN if c == NIR_COLUMN else c)
        return tuple(out)


TABLES: dict[str, TableContract] = {
    BENEFICIARY_TABLE: TableContract(
        name=BENEFICIARY_TABLE,
        columns=(
            NIR_COLUMN,
            "BEN_RNG_GEM",
            "BEN_SEX_COD",
            "BEN_NAI_ANN",
            "BEN_NAI_MOI",
            "BEN_RES_DPT",
            "BEN_RES_COM",
            "BEN_DCD_DTE",
            "BEN_DCD_AME",
            "ORG_AFF_BEN",
            "BEN_DTE_INS",
            "BEN_DTE_MAJ",
            *IDENTITY_COLUMNS,
        ),
        required=(
            NIR_COLUMN,
            "BEN_RNG_GEM",
            "BEN_SEX_COD",
            "BEN_NAI_ANN",
            "BEN_NAI_MOI",
            "BEN_RES_DPT",
            "NOM",
            "PRENOM",
            "DATE_NAISSANCE",
        ),
    ),
    CARE_TABLE: TableContract(
        name=CARE_TABLE,
        columns=(
            *DCIR_KEYS,
            NIR_COLUMN,
            "BEN_RNG_GEM",
            "BEN_SEX_COD",
            "BEN_NAI_ANN",
            "BEN_AMA_COD",
            "BEN_RES_DPT",
            "BEN_RES_COM",
            "ORG_AFF_BEN",
            "EXE_SOI_DTD",
            "EXE_SOI_DTF",
            "EXE_SOI_AMD",
            "PRE_PRE_DTD",
            "PRS_NAT_REF",
            "BSE_PRS_NAT",
            "PRS_ACT_QTE",
            "PRS_ACT_NBR",
            "PRS_ACT_CFT",
            "PRS_PAI_MNT",
            "BSE_REM_BSE",
            "BSE_REM_MNT",
            "BSE_REM_PRU",
            "BSE_REM_SGN",
            "RGO_REM_TAU",
            "EXO_MTF",
            "PFS_EXE_NUM",
            "PFS_PRE_NUM",
            "PSE_SPE_COD",
            "PSP_SPE_COD",
            "PSE_ACT_NAT",
        ),
        required=(*DCIR_KEYS, NIR_COLUMN, "BEN_RNG_GEM", "EXE_SOI_DTD", "PRS_NAT_REF", "PRS_PAI_MNT"),
    ),
    "ER_PHA_F": TableContract(
        name="ER_PHA_F",
        columns=(*DCIR_KEYS, "PHA_PRS_C13", "PHA_ACT_QSN", "PHA_ACT_PRU", "PHA_ORD_NUM"),
        required=(*DCIR_KEYS, "PHA_PRS_C13", "PHA_ACT_QSN"),
    ),
    "ER_BIO_F": TableContract(
        name="ER_BIO_F",
        columns=(*DCIR_KEYS, "BIO_PRS_IDE", "BIO_ACT_QSN", "BIO_ORD_NUM"),
        required=(*DCIR_KEYS, "BIO_PRS_IDE", "BIO_ACT_QSN"),
    ),
    "ER_CAM_F": TableContract(
        name="ER_CAM_F",
        columns=(*DCIR_KEYS, "CAM_PRS_IDE", "CAM_ACT_COD", "CAM_ACT_PRU", "CAM_REM_BSE", "CAM_ORD_NUM"),
        required=(*DCIR_KEYS, "CAM_PRS_IDE"),
    ),
}

INGEST_ORDER = (BENEFICIARY_TABLE, CARE_TABLE, *DETAIL_TABLES)
"""Beneficiaries before care (care rows name beneficiaries), care before details (details name care rows)."""
