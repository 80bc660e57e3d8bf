# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Leak files made from the synthetic population, with the damage real leaks carry, and their ground truth.

For the tests and ``benchmarks/breach.py`` only: a leak here is made of synthetic people (``hygie synth`` columns:
BEN_NIR, NOM, PRENOM, DATE_NAISSANCE, CODE_POSTAL, COMMUNE, TELEPHONE, EMAIL), never of real ones.
"""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass, field
from typing import Any

from openpyxl import Workbook  # type: ignore[import-untyped]

HEADERS = ["N° Sécu", "Nom", "Prénom", "Date de naissance", "Code postal", "Ville", "Téléphone", "E-mail",
           "Groupe sanguin", "Médecin traitant", "Mutuelle", "Traitements", "Commentaires"]  # fmt: skip


@dataclass
class Leak:
    header: list[str]
    rows: list[list[str]]
    truth: list[str | None] = field(default_factory=list)
    """Per row: the NIR of the vault person it describes, None for an outsider, 'conflict' for a mixed row."""

    def csv(self, sep: str = ";", encoding: str = "cp1252") -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, delimiter=sep)
        writer.writerow(self.header)
        writer.writerows(self.rows)
        return out.getvalue().encode(encoding, errors="replace")

    def xlsx(self) -> bytes:
        book = Workbook()
        sheet = book.active
        sheet.append(self.header)
        for r in self.rows:
            # A spreadsheet turns digit strings into numbers: NIRs become floats, postcodes lose leading zeros.
            sheet.append([float(v) if v.isdigit() and len(v) >= 4 else v for v in r])
        out = io.BytesIO()
        book.save(out)
        return out.getvalue()

    def json(self) -> bytes:
        return json.dumps({"patients": [dict(zip(self.header, r, strict=True)) for r in self.rows]}).encode()


def _typo(rng: random.Random, s: str) -> str:
    if len(s) < 4:
        return s
    i = rng.randrange(1, len(s) - 1)
    return s[:i] + rng.choice("aeioursnt") + s[i + 1 :]


def _mangle_nir(rng: random.Random, nir: str) -> tuple[str, bool]:
    """A NIR as a spreadsheet shows it; True when it can still be recovered."""
    k = rng.random()
    if k < 0.5:
        return f"{int(nir[:1])}.{nir[1:]}E+14", True  # full precision, scientific notation
    if k < 0.75:
        return f"{nir[0]},{nir[1:6]}E+14", False  # digits lost
    return f"{nir[0]} {nir[1:3]} {nir[3:5]} {nir[5:7]} {nir[7:10]} {nir[10:13]} {nir[13:]}", True


def make_leak(
    people: list[dict[str, str]],
    outsiders: list[dict[str, str]],
    seed: int = 7,
    size: int = 220,
    duplicates: int = 10,
    conflicts: int = 4,
) -> Leak:
    """A leak of ``size`` vault people (fewer if the vault is smaller) and every outsider, shuffled, with typos,
    swapped, re-cased and de-hyphenated names, 20 % missing NIRs, 12 % NIRs mangled by a spreadsheet, postcodes
    without their leading zero, three date forms; then ``duplicates`` repeated rows, ``conflicts`` rows with one
    person's NIR and another's name and birth date, and one row without any identifier."""
    rng = random.Random(seed)  # noqa: S311  (reproducible damage, not a secret)
    leak = Leak(HEADERS, [])
    chosen = rng.sample(people, k=min(len(people), size))
    pool = [(p, p["BEN_NIR"]) for p in chosen] + [(p, None) for p in outsiders]
    rng.shuffle(pool)
    for p, truth in pool:
        nir, last, first = p["BEN_NIR"], p["NOM"], p["PRENOM"]
        y, m, d = p["DATE_NAISSANCE"].split("-")
        birth = rng.choice([f"{d}/{m}/{y}", p["DATE_NAISSANCE"], f"{d}.{m}.{y}"])
        post = p["CODE_POSTAL"].lstrip("0") if rng.random() < 0.3 else p["CODE_POSTAL"]
        r = rng.random()
        if r < 0.15:
            last = _typo(rng, last)
        elif r < 0.25:
            last, first = first, last
        elif r < 0.35:
            last, first = last.lower(), first.upper().replace("É", "E").replace("È", "E")
        elif r < 0.40:
            first = first.replace("-", " ")
        n = rng.random()
        if n < 0.2:
            nir = ""
        elif n < 0.32:
            nir, _ = _mangle_nir(rng, nir)
        leak.rows.append([nir, last, first, birth, post, p["COMMUNE"], p["TELEPHONE"], p["EMAIL"],
                          rng.choice(["A+", "O-", "B+", "AB+"]), "Dr " + rng.choice(["Martin", "Petit", "Durand"]),
                          rng.choice(["MGEN", "Harmonie", "AG2R"]), rng.choice(["", "Levothyrox", "Doliprane"]),
                          rng.choice(["", "allergie pénicilline", "RAS"])])  # fmt: skip
        leak.truth.append(truth)
    for i in rng.sample(range(len(leak.rows)), k=duplicates):
        leak.rows.append(list(leak.rows[i]))
        leak.truth.append(leak.truth[i])
    for _ in range(conflicts):  # one person's NIR with another's name and birth date
        a, b = rng.sample(people, k=2)
        row = [
            a["BEN_NIR"],
            b["NOM"],
            b["PRENOM"],
            b["DATE_NAISSANCE"],
            b["CODE_POSTAL"],
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ]
        leak.rows.append(row)
        leak.truth.append("conflict")
    leak.rows.append(["", "", "", "", "", "", "", "", "A+", "", "", "", "only health data"])  # no identifier
    leak.truth.append(None)
    return leak


def swap_columns(leak: Leak, a: int, b: int) -> Leak:
    """Two columns' contents exchanged under unchanged headers (as a careless export does)."""
    rows = [list(r) for r in leak.rows]
    for r in rows:
        r[a], r[b] = r[b], r[a]
    return Leak(leak.header, rows, leak.truth)


def as_dict(leak: Leak) -> dict[str, Any]:
    return {"header": leak.header, "rows": len(leak.rows)}
