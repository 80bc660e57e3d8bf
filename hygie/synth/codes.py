# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Code lists and reference tables read from ``hygie/reference``.

The generator takes every code it writes from these files, so whatever the ingest validator checks against the
same lists holds by construction. Loaded once per process (the big lists take a fraction of a second).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

REFERENCE_DIR = Path(__file__).resolve().parent.parent / "reference"
NOMENCLATURES_DIR = REFERENCE_DIR / "snds" / "nomenclatures"
SCHEMAS_DIR = REFERENCE_DIR / "snds" / "schemas"
DRUGS_FILE = REFERENCE_DIR / "drugs.csv"


def read_code_list(name: str, *columns: str) -> list[dict[str, str]]:
    """Rows of a code list; with ``columns``, only those (much faster on the large lists)."""
    with (NOMENCLATURES_DIR / f"{name}.csv").open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter=";")
        header = next(reader)
        wanted = [(c, header.index(c)) for c in (columns or header)]
        return [{c: row[i] for c, i in wanted} for row in reader]


@cache
def code_column(name: str) -> str:
    """The column of a code list whose role is "code" in its Table Schema."""
    schema = json.loads((NOMENCLATURES_DIR / f"{name}.json").read_text(encoding="utf-8"))
    for field in schema["fields"]:
        if field.get("role") == "code":
            return str(field["name"])
    raise LookupError(f"code list {name} declares no code column")


@cache
def codes(name: str) -> frozenset[str]:
    """Every code of a code list, as written in its CSV."""
    column = code_column(name)
    return frozenset(row[column] for row in read_code_list(name, column))


def require(name: str, *wanted: str | int) -> None:
    """Fail early, naming the code, if the reference no longer holds a code the generator relies on."""
    have = codes(name)
    missing = [str(w) for w in wanted if str(w) not in have]
    if missing:
        raise LookupError(f"{name} lacks codes {missing}; hygie/reference changed under hygie.synth")


@dataclass(frozen=True)
class Commune:
    dpt: str
    """Three characters as in IR_DPT_V: "075", "02A", "971"."""
    code: str
    """Three digits as in IR_GEO_V.GEO_COM_COD (the INSEE code's last three digits)."""
    name: str


@cache
def communes_by_department() -> dict[str, tuple[Commune, ...]]:
    """Real communes per département (placeholders "000"/"999" left out), in file order."""
    out: dict[str, list[Commune]] = {}
    for row in read_code_list("IR_GEO_V", "GEO_DPT_COD", "GEO_COM_COD", "GEO_COM_LIB"):
        code = row["GEO_COM_COD"]
        if code in ("000", "999") or not code.isdigit():
            continue
        out.setdefault(row["GEO_DPT_COD"], []).append(Commune(row["GEO_DPT_COD"], code, row["GEO_COM_LIB"]))
    return {k: tuple(v) for k, v in out.items()}


@cache
def departments() -> frozenset[str]:
    return codes("IR_DPT_V")


@cache
def caisses_by_department(per_department: int = 4) -> dict[str, tuple[str, ...]]:
    """A few general-scheme (régime général, "01C") organisations per département.

    The main caisse of a département is the ORG_BSE_NUM with the most offices there; its first offices in code
    order stand for the centres people are affiliated to.
    """
    offices: dict[str, dict[str, list[str]]] = {}
    for row in read_code_list("IR_ORG_V", "ORG_NUM", "GEO_DPT_COD", "ORG_BSE_NUM"):
        num = row["ORG_NUM"]
        if not num.startswith("01C") or len(num) != 9:
            continue
        offices.setdefault(row["GEO_DPT_COD"], {}).setdefault(row["ORG_BSE_NUM"], []).append(num)
    out: dict[str, tuple[str, ...]] = {}
    for dpt, by_base in offices.items():
        base = max(sorted(by_base), key=lambda b: len(by_base[b]))
        out[dpt] = tuple(sorted(by_base[base])[:per_department])
    return out


@dataclass(frozen=True)
class Drug:
    cip13: str
    atc: str
    label: str
    chronic: bool
    price_cents: int
    rate: int


@cache
def drugs() -> tuple[Drug, ...]:
    """The synthetic drug reference (``hygie/reference/drugs.csv``), comment lines skipped."""
    with DRUGS_FILE.open(encoding="utf-8", newline="") as f:
        lines = [line for line in f if not line.startswith("#")]
    out = []
    for row in csv.DictReader(lines):
        out.append(
            Drug(
                cip13=row["PHA_PRS_C13"],
                atc=row["PHA_ATC_C07"],
                label=row["PHA_ATC_LIB"],
                chronic=row["CHRONIC"] == "1",
                price_cents=round(float(row["UNIT_PRICE"]) * 100),
                rate=int(row["RATE"]),
            )
        )
    return tuple(out)


@cache
def ccam_acts() -> dict[str, str]:
    """CCAM code -> its regrouping (ADI imaging, ATM technical acts, ...)."""
    return {row["CAM_PRS_IDE_COD"]: row["CAM_PRS_RGT"] for row in read_code_list("IR_CCAM_V63")}


@cache
def nabm_coefficients() -> dict[str, int]:
    """NABM lab act -> its coefficient in B (the tariff is the coefficient times the value of the B letter)."""
    out: dict[str, int] = {}
    for row in read_code_list("IR_BIO_R"):
        if row.get("BIO_TAR_NAT") == "B":
            try:
                out[row["BIO_PRS_IDE"]] = round(float(row["BIO_TAR_COF"]))
            except (TypeError, ValueError):
                continue
    return out
