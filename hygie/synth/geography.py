# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Where people live and were born: départements, communes, postal codes, phone prefixes."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

from hygie.synth.codes import Commune, communes_by_department, read_code_list

# Rough populations in thousands (INSEE, early 2020s). Only the proportions matter: they weight residence,
# birth place and the size of provider pools.
DEPARTMENT_POPULATION: dict[str, int] = {
    "001": 660, "002": 530, "003": 335, "004": 165, "005": 141, "006": 1100, "007": 330, "008": 270,
    "009": 155, "010": 310, "011": 375, "012": 280, "013": 2050, "014": 700, "015": 143, "016": 350,
    "017": 655, "018": 300, "019": 240, "02A": 160, "02B": 185, "021": 535, "022": 600, "023": 115,
    "024": 410, "025": 545, "026": 520, "027": 600, "028": 430, "029": 920, "030": 750, "031": 1420,
    "032": 190, "033": 1650, "034": 1200, "035": 1100, "036": 215, "037": 610, "038": 1280, "039": 255,
    "040": 420, "041": 325, "042": 765, "043": 228, "044": 1450, "045": 680, "046": 175, "047": 330,
    "048": 76, "049": 820, "050": 495, "051": 565, "052": 170, "053": 307, "054": 730, "055": 182,
    "056": 760, "057": 1045, "058": 200, "059": 2610, "060": 830, "061": 278, "062": 1460, "063": 665,
    "064": 690, "065": 230, "066": 480, "067": 1150, "068": 770, "069": 1900, "070": 234, "071": 550,
    "072": 565, "073": 440, "074": 840, "075": 2130, "076": 1255, "077": 1430, "078": 1450, "079": 375,
    "080": 565, "081": 390, "082": 262, "083": 1090, "084": 562, "085": 690, "086": 440, "087": 372,
    "088": 362, "089": 335, "090": 140, "091": 1310, "092": 1630, "093": 1660, "094": 1410, "095": 1250,
    "971": 385, "972": 355, "973": 290, "974": 870, "976": 310,
}  # fmt: skip

# Share of a département's people living in its big cities (communes named by IR_GEO_V code); the rest spread
# over the other communes with Zipf-like weights, so most communes are small, as in reality.
BIG_CITIES: dict[str, dict[str, float]] = {
    "075": {f"{101 + i}": 0.05 for i in range(20)},
    "013": {**{f"{201 + i}": 0.027 for i in range(16)}, "001": 0.07},
    "069": {**{f"{381 + i}": 0.03 for i in range(9)}, "266": 0.08},
    "031": {"555": 0.35}, "006": {"088": 0.31}, "044": {"109": 0.22}, "034": {"172": 0.25},
    "067": {"482": 0.25}, "033": {"063": 0.16}, "059": {"350": 0.09, "512": 0.04, "599": 0.04},
    "035": {"238": 0.2}, "051": {"454": 0.32}, "083": {"137": 0.16}, "042": {"218": 0.23},
    "076": {"351": 0.13, "540": 0.09}, "038": {"185": 0.12}, "021": {"231": 0.3}, "049": {"007": 0.19},
    "030": {"189": 0.2}, "063": {"113": 0.22}, "072": {"181": 0.25}, "029": {"019": 0.15},
    "037": {"261": 0.22}, "080": {"021": 0.24}, "087": {"085": 0.35}, "066": {"136": 0.25},
    "057": {"463": 0.11}, "025": {"056": 0.22}, "045": {"234": 0.17}, "014": {"118": 0.15},
    "054": {"395": 0.14}, "092": {"012": 0.07}, "093": {"066": 0.07, "048": 0.07}, "095": {"018": 0.09},
    "078": {"646": 0.06}, "094": {"028": 0.06}, "974": {"411": 0.18}, "971": {"120": 0.05},
}  # fmt: skip

# First two digits of landlines by region (IR_DPT_V.GEO_REG_COD); overseas have their own.
_LANDLINE_BY_REGION = {11: "01", 24: "02", 28: "02", 52: "02", 53: "02", 32: "03", 44: "03", 27: "03",
                       84: "04", 93: "04", 94: "04", 75: "05"}  # fmt: skip
_OCCITANIE_EAST = {"011", "030", "034", "048", "066"}
_OVERSEAS_PHONE = {"971": ("0590", "0690"), "972": ("0596", "0696"), "973": ("0594", "0694"),
                   "974": ("0262", "0692"), "976": ("0269", "0639")}  # fmt: skip


@dataclass(frozen=True)
class Department:
    code: str
    region: int
    nir_code: str
    """The two characters a NIR carries for a birth here: "75", "2A", "97" for every overseas one."""
    population: int
    communes: tuple[Commune, ...]
    commune_weights: npt.NDArray[np.float64]
    """Residence probability of each commune, summing to 1."""
    landline: str
    mobile: str


def _commune_weights(dpt: str, communes: tuple[Commune, ...]) -> npt.NDArray[np.float64]:
    big = BIG_CITIES.get(dpt, {})
    codes = [c.code for c in communes]
    w = np.zeros(len(communes))
    small = [i for i, c in enumerate(codes) if c not in big]
    # A fixed (seed-independent) order: the same villages are "larger" whatever the seed, like real geography.
    order = sorted(small, key=lambda i: zlib.crc32(f"{dpt}{codes[i]}".encode()))
    ranks = np.arange(1, len(order) + 1, dtype=np.float64)
    zipf = 1.0 / ranks**0.9
    share_small = max(0.0, 1.0 - sum(big[c] for c in codes if c in big))
    if order:
        w[order] = zipf / zipf.sum() * share_small
    for i, c in enumerate(codes):
        if c in big:
            w[i] = big[c]
    normalised: npt.NDArray[np.float64] = w / w.sum()
    return normalised


def _nir_code(dpt: str) -> str:
    if dpt.startswith("97"):
        return "97"
    return dpt[1:] if dpt.startswith("0") else dpt


@cache
def departments() -> tuple[Department, ...]:
    """Residence départements (metropolitan and overseas), in code order."""
    regions = {row["GEO_DPT_COD"]: int(row["GEO_REG_COD"]) for row in read_code_list("IR_DPT_V")}
    by_dpt = communes_by_department()
    out = []
    for dpt in sorted(DEPARTMENT_POPULATION):
        communes = by_dpt[dpt]
        region = regions[dpt]
        if dpt in _OVERSEAS_PHONE:
            landline, mobile = _OVERSEAS_PHONE[dpt]
        else:
            landline = "04" if dpt in _OCCITANIE_EAST else _LANDLINE_BY_REGION.get(region, "05")
            mobile = ""
        out.append(
            Department(
                code=dpt,
                region=region,
                nir_code=_nir_code(dpt),
                population=DEPARTMENT_POPULATION[dpt],
                communes=communes,
                commune_weights=_commune_weights(dpt, communes),
                landline=landline,
                mobile=mobile,
            )
        )
    return tuple(out)


def department_weights() -> npt.NDArray[np.float64]:
    pop = np.array([d.population for d in departments()], dtype=np.float64)
    weights: npt.NDArray[np.float64] = pop / pop.sum()
    return weights


def postal_code(dpt: str, commune: str) -> str:
    """A plausible five-digit postal code starting with the département's digits.

    Postal codes are not in the reference; big-city arrondissements get their real ones, other communes a
    stable "DDx00"-like code so that all people of a commune share one.
    """
    c = int(commune)
    if dpt == "075":
        return f"750{c - 100:02d}"
    if dpt == "013" and 201 <= c <= 216:
        return f"130{c - 200:02d}"
    if dpt == "069" and 381 <= c <= 389:
        return f"6900{c - 380}"
    if dpt.startswith("97"):
        return f"{dpt}{(c * 7) % 10}0"
    if dpt == "02A":
        return f"20{(c * 7) % 20:02d}0"
    if dpt == "02B":
        return f"202{(c * 7) % 10}0"
    return f"{dpt[1:]}{(c * 37) % 100:02d}0"
