# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A small, explicit delivery builder for ingestion tests (independent of hygie.synth)."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from hygie.identity.nir import nir_key
from hygie.ingest.contract import TABLES


def make_nir(sex: int, year: int, month: int, dept: str, commune: int, order: int) -> str:
    body = f"{sex}{year % 100:02d}{month:02d}{dept}{commune:03d}{order:03d}"
    return body + nir_key(body)


@dataclass
class Delivery:
    rows: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    def write(self, folder: Path, batch_id: str, producer: str = "TEST") -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        for table, rows in self.rows.items():
            path = folder / f"{table}.csv"
            with path.open("w", encoding="utf-8", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(TABLES[table].columns), lineterminator="\n")
                writer.writeheader()
                writer.writerows(rows)
            files.append({"name": path.name, "rows": len(rows), "sha256": sha256(path)})
        manifest = {"producer": producer, "batch_id": batch_id, "created_at": "2025-01-01T00:00:00Z", "files": files}
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        return folder


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refresh_manifest(folder: Path) -> None:
    """Recompute checksums and row counts after a test edits a file on purpose."""
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry in manifest["files"]:
        path = folder / entry["name"]
        entry["sha256"] = sha256(path)
        entry["rows"] = max(0, len(path.read_text(encoding="utf-8").splitlines()) - 1)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))


def person(i: int) -> dict[str, str]:
    sex = 1 + i % 2
    year, month = 1950 + i % 50, 1 + i % 12
    dept = ["75", "13", "2A", "59", "69"][i % 5]
    nir = make_nir(sex, year, month, dept, 100 + i % 800, 1 + i % 999)
    return {
        "BEN_NIR": nir,
        "BEN_RNG_GEM": "1",
        "BEN_SEX_COD": str(sex),
        "BEN_NAI_ANN": str(year),
        "BEN_NAI_MOI": f"{month:02d}",
        "BEN_RES_DPT": "075",
        "BEN_RES_COM": "056",
        "BEN_DCD_DTE": "",
        "BEN_DCD_AME": "",
        "ORG_AFF_BEN": "",
        "BEN_DTE_INS": "2010-01-01",
        "BEN_DTE_MAJ": "2024-01-01",
        "NOM": f"Durand-{i}x",
        "PRENOM": f"Camille{i}y",
        "DATE_NAISSANCE": f"{year}-{month:02d}-{1 + i % 28:02d}",
        "ADRESSE": f"{i} rue des Essais Cliniques",
        "CODE_POSTAL": "75011",
        "COMMUNE": "Paris",
        "TELEPHONE": f"06 12 34 {i % 100:02d} {(i * 7) % 100:02d}",
        "EMAIL": f"camille.durand{i}@example.fr",
    }


def keys(i: int, line: int = 1) -> dict[str, str]:
    return {
        "FLX_DIS_DTD": "2024-03-01",
        "FLX_TRT_DTD": "2024-02-20",
        "FLX_EMT_TYP": "1",
        "FLX_EMT_NUM": "1",
        "FLX_EMT_ORD": "1",
        "ORG_CLE_NUM": "01C682674",
        "DCT_ORD_NUM": str(1000 + i),
        "PRS_ORD_NUM": str(line),
        "REM_TYP_AFF": "1",
    }


def care(i: int, nir: str, nature: str = "1111", day: int = 5, line: int = 1) -> dict[str, str]:
    row = {c: "" for c in TABLES["ER_PRS_F"].columns}
    row.update(keys(i, line))
    row.update(
        {
            "BEN_NIR": nir,
            "BEN_RNG_GEM": "1",
            "EXE_SOI_DTD": f"2024-02-{day:02d}",
            "EXE_SOI_AMD": "2024-02",
            "PRS_NAT_REF": nature,
            "BSE_PRS_NAT": nature,
            "PRS_ACT_QTE": "1",
            "PRS_PAI_MNT": "30.00",
            "BSE_REM_BSE": "30.00",
            "BSE_REM_MNT": "21.00",
            "RGO_REM_TAU": "70",
            "PSE_SPE_COD": "1",
        }
    )
    return row


def small_delivery(people: int = 12) -> Delivery:
    """``people`` beneficiaries, a GP consultation each, and one biology act with its ER_BIO_F row."""
    d = Delivery()
    ben = [person(i) for i in range(people)]
    d.rows["IR_BEN_R"] = ben
    d.rows["ER_PRS_F"] = [care(i, p["BEN_NIR"]) for i, p in enumerate(ben)]
    d.rows["ER_PRS_F"].append(care(people, ben[0]["BEN_NIR"], nature="3211", day=6))
    bio = {**keys(people), "BIO_PRS_IDE": "1104", "BIO_ACT_QSN": "1", "BIO_ORD_NUM": "1"}
    d.rows["ER_BIO_F"] = [bio]
    return d
