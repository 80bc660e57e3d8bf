# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Delivered claim lines as CSV text, table by table and flow month by flow month.

Formatting is the expensive part of the generator, so rows are assembled from a few *segments*: runs of
adjacent columns that are functions of a handful of integers (the twelve amount and code columns of a line
follow from its nature, quantity, coefficient, price, overfee, rate, exemption and sign). Each distinct
combination is formatted once and rows are joined from some eight pieces instead of forty. The segments'
columns are checked against the contract, so the column order cannot drift from it.

No value written here can hold a comma, a quote or a line break: plain joining is what the csv module would
write. (Identity columns can; IR_BEN_R goes through the csv module, see ``Batch.append_rows``.)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hygie.ingest.contract import BENEFICIARY_TABLE, CARE_TABLE, DCIR_KEYS, TABLES
from hygie.synth.claims import Detail
from hygie.synth.codes import drugs
from hygie.synth.dates import Period, iso_strings, month_index
from hygie.synth.flows import DCT_SPACE, NEGATIVE, Delivered
from hygie.synth.geography import departments
from hygie.synth.identity import Identities
from hygie.synth.population import People
from hygie.synth.providers import Providers
from hygie.synth.tariffs import ccam_codes

IntArray = npt.NDArray[np.int64]
Column = list[str]

REGIME_GENERAL = 1
"""FLX_EMT_TYP (IR_TYT_V): every caisse used is a general-scheme one ("01C...")."""
REMBOURSEMENT = 1
"""REM_TYP_AFF: a plain reimbursement."""
MAIN_ACT = 1
"""CAM_ACT_COD: the professional's main act (4 would be anaesthesia)."""
AMOUNT_COLUMNS = ("PRS_NAT_REF", "BSE_PRS_NAT", "PRS_ACT_QTE", "PRS_ACT_NBR", "PRS_ACT_CFT", "PRS_PAI_MNT",
                  "BSE_REM_BSE", "BSE_REM_MNT", "BSE_REM_PRU", "BSE_REM_SGN", "RGO_REM_TAU", "EXO_MTF")  # fmt: skip
"""ER_PRS_F columns that follow from a line's nature, quantity, coefficient, price, overfee, rate,
exemption and sign."""


def _text(values: IntArray, label: Callable[[int], str]) -> Column:
    """Format each distinct value once with ``label``, then spread.

    Values usually span small ranges (codes, cents, day numbers, sequence numbers), where a lookup table over
    the range is cheaper than sorting out the distinct values.
    """
    if values.size == 0:
        return []
    lo, hi = int(values.min()), int(values.max())
    if hi - lo > 4 * values.size + 4096:
        uniq, inverse = np.unique(values, return_inverse=True)
        labels = np.array([label(v) for v in uniq.tolist()], dtype=object)
        return list(labels[inverse.ravel()].tolist())
    offset = values - lo
    present = np.flatnonzero(np.bincount(offset, minlength=hi - lo + 1))
    table = np.empty(hi - lo + 1, dtype=object)
    table[present] = [label(v + lo) for v in present.tolist()]
    return list(table[offset].tolist())


def _combinations(parts: Sequence[IntArray], label: Callable[..., str]) -> Column:
    """``label(*values)`` for each row's combination of ``parts``, each distinct combination formatted once."""
    if parts[0].size == 0:
        return []
    los = [int(p.min()) for p in parts]
    spans = [int(p.max()) - lo + 1 for p, lo in zip(parts, los, strict=True)]
    if math.prod(spans) >= 2**62:
        uniq, inverse = np.unique(np.stack(parts, axis=1), axis=0, return_inverse=True)
        labels = np.array([label(*row) for row in uniq.tolist()], dtype=object)
        return list(labels[inverse.ravel()].tolist())
    key = np.zeros(parts[0].size, dtype=np.int64)
    for p, lo, span in zip(parts, los, spans, strict=True):
        key = key * span + (p - lo)

    def decode(k: int) -> str:
        values = []
        for lo, span in zip(reversed(los), reversed(spans), strict=True):
            k, r = divmod(k, span)
            values.append(r + lo)
        return label(*reversed(values))

    return _text(key, decode)


def ints(values: IntArray) -> Column:
    return _text(values, str)


def money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


@dataclass(frozen=True)
class Segment:
    columns: tuple[str, ...]
    values: Column
    """The columns' values joined with commas, one string per row."""


def _rows(table: str, segments: list[Segment]) -> list[str]:
    columns = tuple(c for s in segments for c in s.columns)
    if columns != TABLES[table].columns:
        raise RuntimeError(f"{table}: rendered columns {columns} are not the contract's")
    return list(map(",".join, zip(*(s.values for s in segments), strict=True)))


@dataclass(frozen=True)
class Rendered:
    """CSV lines (without line ends) of one chunk for one table, and the flow month of each line."""

    table: str
    lines: list[str]
    month: IntArray
    """Months since 1970-01 of each line's FLX_DIS_DTD, non-decreasing."""

    def by_month(self) -> Iterator[tuple[int, list[str]]]:
        if not self.lines:
            return
        cuts = np.flatnonzero(np.diff(self.month)) + 1
        bounds = [0, *cuts.tolist(), len(self.lines)]
        for a, b in itertools.pairwise(bounds):
            yield int(self.month[a]), self.lines[a:b]


class Renderer:
    def __init__(self, period: Period, providers: Providers) -> None:
        self.period = period
        self.providers = providers
        self.provider_numbers = ["", *providers.number]
        self.drug_codes = [d.cip13 for d in drugs()]
        self.ccam = ccam_codes()
        self.dpt_codes = [d.code for d in departments()]

    def render(self, people: People, d: Delivered) -> list[Rendered]:
        lines = d.lines
        if lines.size == 0:
            return []
        p = lines.person
        valid_pre = lines.pre_day[lines.pre_day >= 0]
        first_day = int(min(lines.day.min(), valid_pre.min(initial=lines.day.min())))
        dates: list[str] = iso_strings(first_day, self.period.cutoff).tolist()

        def iso(day: int) -> str:
            return dates[day - first_day]

        sign = np.where(d.sign == NEGATIVE, -1, 1)
        keys = self._keys(people, d, iso)

        # BEN_AMA_COD: age in years, or 1000 + age in months under two years (SNDS convention).
        age_months = month_index(lines.day) - month_index(people.birth_day)[p]
        ama = np.where(age_months < 24, 1000 + age_months, age_months // 12)
        person_a = np.array(
            [f"{nir},1,{sex},{year}" for nir, sex, year in zip(people.nir, people.sex, people.birth_year, strict=True)],
            dtype=object,
        )
        person_b = np.array(
            [
                f"{self.dpt_codes[j]},{com},{org}"
                for j, com, org in zip(people.dpt.tolist(), people.commune, people.org, strict=True)
            ],
            dtype=object,
        )
        care = [
            Segment(DCIR_KEYS, keys),
            Segment(("BEN_NIR", "BEN_RNG_GEM", "BEN_SEX_COD", "BEN_NAI_ANN"), list(person_a[p].tolist())),
            Segment(("BEN_AMA_COD",), ints(ama)),
            Segment(("BEN_RES_DPT", "BEN_RES_COM", "ORG_AFF_BEN"), list(person_b[p].tolist())),
            Segment(
                ("EXE_SOI_DTD", "EXE_SOI_DTF", "EXE_SOI_AMD"),
                _text(lines.day, lambda v: f"{iso(v)},{iso(v)},{iso(v)[:7]}"),
            ),
            Segment(("PRE_PRE_DTD",), _text(lines.pre_day, lambda v: iso(v) if v >= 0 else "")),
            Segment(
                AMOUNT_COLUMNS,
                _combinations(
                    [lines.nat, lines.qty, lines.cft, lines.unit, lines.overfee, lines.rate, lines.exo, d.sign],
                    _amounts,
                ),
            ),
            Segment(
                ("PFS_EXE_NUM", "PFS_PRE_NUM", "PSE_SPE_COD", "PSP_SPE_COD", "PSE_ACT_NAT"),
                _combinations([lines.exe, lines.pre], self._professionals),
            ),
        ]
        month = month_index(d.flow)
        out = [Rendered(CARE_TABLE, _rows(CARE_TABLE, care), month)]

        qty = lines.qty * sign
        base = lines.unit * lines.cft * lines.qty * sign
        for table, detail, columns, parts, label in (
            (
                "ER_PHA_F",
                Detail.PHARMACY,
                ("PHA_PRS_C13", "PHA_ACT_QSN", "PHA_ACT_PRU", "PHA_ORD_NUM"),
                (lines.item, qty, lines.unit),
                lambda i, q, u: f"{self.drug_codes[i]},{q},{money(u)},1",
            ),
            (
                "ER_BIO_F",
                Detail.LAB,
                ("BIO_PRS_IDE", "BIO_ACT_QSN", "BIO_ORD_NUM"),
                (lines.item, qty),
                lambda i, q: f"{i},{q},1",
            ),
            (
                "ER_CAM_F",
                Detail.CCAM,
                ("CAM_PRS_IDE", "CAM_ACT_COD", "CAM_ACT_PRU", "CAM_REM_BSE", "CAM_ORD_NUM"),
                (lines.item, lines.unit, base),
                lambda i, u, b: f"{self.ccam[i]},{MAIN_ACT},{money(u)},{money(b)},1",
            ),
        ):
            sel = np.flatnonzero(lines.detail == detail)
            segments = [
                Segment(DCIR_KEYS, [keys[i] for i in sel.tolist()]),
                Segment(columns, _combinations([part[sel] for part in parts], label)),
            ]
            out.append(Rendered(table, _rows(table, segments), month[sel]))
        return out

    def _keys(self, people: People, d: Delivered, iso: Callable[[int], str]) -> Column:
        orgs = sorted(set(people.org))
        org_index = {o: i for i, o in enumerate(orgs)}
        person_org = np.array([org_index[o] for o in people.org], dtype=np.int64)
        # FLX_EMT_NUM: the emitting centre, stable per caisse (its 3-digit caisse number folded into 1..99).
        emitter = [int(o[3:6]) % 99 + 1 for o in orgs]
        # DCT_ORD_NUM stays within 8 digits; FLX_EMT_ORD counts its wrap-arounds, keeping the keys unique.
        block = 1 + d.decompte // DCT_SPACE
        segments = [
            Segment(
                ("FLX_DIS_DTD", "FLX_TRT_DTD", "FLX_EMT_TYP"),
                _combinations([d.flow, d.treated], lambda f, t: f"{iso(f)},{iso(t)},{REGIME_GENERAL}"),
            ),
            Segment(
                ("FLX_EMT_NUM", "FLX_EMT_ORD", "ORG_CLE_NUM"),
                _combinations([person_org[d.lines.person], block], lambda o, b: f"{emitter[o]},{b},{orgs[o]}"),
            ),
            Segment(("DCT_ORD_NUM",), ints(1 + d.decompte % DCT_SPACE)),
            Segment(("PRS_ORD_NUM", "REM_TYP_AFF"), _text(d.order, lambda v: f"{v},{REMBOURSEMENT}")),
        ]
        columns = tuple(c for s in segments for c in s.columns)
        if columns != DCIR_KEYS:
            raise RuntimeError(f"key columns {columns} are not the contract's DCIR keys")
        return list(map(",".join, zip(*(s.values for s in segments), strict=True)))

    def _professionals(self, exe: int, pre: int) -> str:
        spe = self.providers.specialty
        prescriber_spe = "" if pre < 0 else str(spe[pre])
        return (
            f"{self.provider_numbers[exe + 1]},{self.provider_numbers[pre + 1]},{spe[exe]},{prescriber_spe},"
            f"{self.providers.activity[exe]}"
        )


def _amounts(nat: int, qty: int, cft: int, unit: int, overfee: int, rate: int, exo: int, sgn: int) -> str:
    """The twelve columns from PRS_NAT_REF to EXO_MTF. Amounts carry the sign, quantities do not."""
    s = -1 if sgn == NEGATIVE else 1
    base = unit * cft * qty
    paid = (base + overfee) * s
    refund = (base * rate + 50) // 100 * s
    return (
        f"{nat},{nat},{qty},{qty},{cft},{money(paid)},{money(base * s)},{money(refund)},{money(unit)},{sgn},"
        f"{rate},{exo}"
    )


def beneficiary_rows(people: People, ids: Identities) -> list[tuple[str, ...]]:
    """IR_BEN_R rows in contract column order (identity values may need CSV quoting: see Batch.append_rows)."""
    birth = people.birth_day.astype("datetime64[D]")
    death = people.death_day
    dead = death >= 0
    death_iso = np.where(dead, death, 0).astype("datetime64[D]").astype(str)
    dpts = departments()
    cols: dict[str, list[str]] = {
        "BEN_NIR": people.nir,
        "BEN_RNG_GEM": ["1"] * people.size,
        "BEN_SEX_COD": ints(people.sex),
        "BEN_NAI_ANN": ints(people.birth_year),
        "BEN_NAI_MOI": _text(people.birth_month, lambda v: f"{v:02d}"),
        "BEN_RES_DPT": [dpts[j].code for j in people.dpt.tolist()],
        "BEN_RES_COM": people.commune,
        "BEN_DCD_DTE": [s if k else "" for s, k in zip(death_iso.tolist(), dead.tolist(), strict=True)],
        "BEN_DCD_AME": [s[:7] if k else "" for s, k in zip(death_iso.tolist(), dead.tolist(), strict=True)],
        "ORG_AFF_BEN": people.org,
        "BEN_DTE_INS": people.registered_day.astype("datetime64[D]").astype(str).tolist(),
        "BEN_DTE_MAJ": people.updated_day.astype("datetime64[D]").astype(str).tolist(),
        "NOM": ids.last_name,
        "PRENOM": ids.first_name,
        "DATE_NAISSANCE": birth.astype(str).tolist(),
        "ADRESSE": ids.address,
        "CODE_POSTAL": ids.postal_code,
        "COMMUNE": ids.city,
        "TELEPHONE": ids.phone,
        "EMAIL": ids.email,
    }
    return list(zip(*(cols[c] for c in TABLES[BENEFICIARY_TABLE].columns), strict=True))
