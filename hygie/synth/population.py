# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Who is insured: age and sex, residence, place of birth, NIR, death.

People are those alive and insured on January 1st of the first year; nobody is born into the population
during the period (a simplification: the referential here is a closed cohort).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hygie.synth.codes import caisses_by_department
from hygie.synth.dates import Period, month_index, year_of, year_start
from hygie.synth.geography import department_weights, departments
from hygie.synth.nir import BIRTH_COUNTRIES, NirRegistry

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

# France's age pyramid in five-year bands (thousands, INSEE, 1 January 2024, rounded): men, women.
# The last band covers 100 to 105.
PYRAMID = np.array([
    (1760, 1685), (1950, 1865), (2120, 2020), (2140, 2040), (1990, 1930), (1860, 1900), (1990, 2080),
    (2090, 2190), (2140, 2210), (2080, 2130), (2230, 2300), (2200, 2310), (2040, 2200), (1860, 2080),
    (1720, 1990), (1180, 1460), (770, 1070), (480, 820), (170, 420), (35, 130), (4, 25),
], dtype=np.float64)  # fmt: skip
BAND_WIDTH = 5
MAX_AGE = 105

# Annual death hazard: Gompertz-Makeham, h(x) = c + a·exp(b·x), with a first-year excess and men dying
# younger; calibrated to about 0.9 % deaths a year over the pyramid above.
_MAKEHAM = 0.00008
_GOMPERTZ_A = 0.0000190
_GOMPERTZ_B = 0.0955
_INFANT = 0.0035
_SEX_FACTOR = {1: 1.3, 2: 0.78}

_SAME_DEPARTMENT_BIRTH = 0.68
_SAME_REGION_BIRTH = 0.12


def annual_death_hazard(age: FloatArray, sex: IntArray) -> FloatArray:
    h = _MAKEHAM + _GOMPERTZ_A * np.exp(_GOMPERTZ_B * age) + np.where(age < 1, _INFANT, 0.0)
    return np.minimum(h * np.where(sex == 1, _SEX_FACTOR[1], _SEX_FACTOR[2]), 0.9)


def _abroad_share(age: IntArray) -> FloatArray:
    # Foreign-born people are mostly adults: ~3 % of children, ~9 % of working ages, ~6 % of the very old.
    return np.select([age < 18, age < 80], [0.03, 0.09], 0.06)


@dataclass(frozen=True)
class People:
    index: IntArray
    """Position in the whole population (0-based), stable whatever the chunking."""
    sex: IntArray
    birth_day: IntArray
    age: IntArray
    """Completed years on the first day of the period."""
    dpt: IntArray
    """Index into geography.departments()."""
    commune: list[str]
    nir: list[str]
    org: list[str]
    """Affiliation caisse (ORG_AFF_BEN), also the caisse that pays their claims (ORG_CLE_NUM)."""
    death_day: IntArray
    """Day of death, or -1 for people alive at the cut-off."""
    registered_day: IntArray
    updated_day: IntArray

    @property
    def size(self) -> int:
        return int(self.sex.size)

    @property
    def birth_year(self) -> IntArray:
        return year_of(self.birth_day)

    @property
    def birth_month(self) -> IntArray:
        return month_index(self.birth_day) % 12 + 1

    def last_day(self, period: Period) -> IntArray:
        """Last day each person can receive care: death or cut-off."""
        return np.where(self.death_day >= 0, self.death_day, period.cutoff)


def _ages_and_sexes(rng: np.random.Generator, n: int) -> tuple[IntArray, IntArray]:
    cells = PYRAMID.ravel()
    cell = rng.choice(cells.size, size=n, p=cells / cells.sum())
    band, sex_col = np.divmod(cell, 2)
    width = np.where(band == len(PYRAMID) - 1, MAX_AGE - (len(PYRAMID) - 1) * BAND_WIDTH + 1, BAND_WIDTH)
    age = band * BAND_WIDTH + (rng.random(n) * width).astype(np.int64)
    return age.astype(np.int64), (sex_col + 1).astype(np.int64)


def _pick_communes(rng: np.random.Generator, dpt: IntArray) -> list[str]:
    dpts = departments()
    out = [""] * dpt.size
    for j in np.unique(dpt).tolist():
        who = np.flatnonzero(dpt == j)
        d = dpts[j]
        picks = rng.choice(len(d.communes), size=who.size, p=d.commune_weights)
        for i, c in zip(who.tolist(), picks.tolist(), strict=True):
            out[i] = d.communes[c].code
    return out


def _birth_places(rng: np.random.Generator, age: IntArray, dpt: IntArray) -> tuple[list[str], list[str]]:
    """NIR place of birth (département part, commune part) for each person."""
    dpts = departments()
    n = age.size
    weights = department_weights()
    u = rng.random(n)
    abroad = rng.random(n) < _abroad_share(age)
    birth_dpt = dpt.copy()
    same_region = (u >= _SAME_DEPARTMENT_BIRTH) & (u < _SAME_DEPARTMENT_BIRTH + _SAME_REGION_BIRTH)
    elsewhere = u >= _SAME_DEPARTMENT_BIRTH + _SAME_REGION_BIRTH
    birth_dpt[elsewhere] = rng.choice(len(dpts), size=int(elsewhere.sum()), p=weights)
    regions = np.array([d.region for d in dpts])
    for r in np.unique(regions[dpt[same_region]]).tolist():
        who = np.flatnonzero(same_region & (regions[dpt] == r))
        members = np.flatnonzero(regions == r)
        w = weights[members] / weights[members].sum()
        birth_dpt[who] = members[rng.choice(members.size, size=who.size, p=w)]
    communes = _pick_communes(rng, birth_dpt)
    countries = list(BIRTH_COUNTRIES)
    cw = np.array(list(BIRTH_COUNTRIES.values()))
    country = rng.choice(len(countries), size=n, p=cw / cw.sum())
    dep_part: list[str] = []
    com_part: list[str] = []
    for i in range(n):
        if abroad[i]:
            dep_part.append("99")
            com_part.append(countries[country[i]])
        else:
            dep_part.append(dpts[birth_dpt[i]].nir_code)
            com_part.append(communes[i])
    return dep_part, com_part


def _deaths(rng: np.random.Generator, period: Period, age: IntArray, sex: IntArray) -> IntArray:
    death = np.full(age.size, -1, dtype=np.int64)
    for y in range(period.years):
        first = year_start(period.start_year + y)
        last = year_start(period.start_year + y + 1) - 1
        alive = death < 0
        p = 1.0 - np.exp(-annual_death_hazard((age + y + 0.5).astype(np.float64), sex))
        dies = alive & (rng.random(age.size) < p)
        death[dies] = first + (rng.random(int(dies.sum())) * (last - first + 1)).astype(np.int64)
    return death


def _orgs(rng: np.random.Generator, dpt: IntArray) -> list[str]:
    dpts = departments()
    caisses = caisses_by_department()
    fallback = caisses["075"]
    out = []
    picks = rng.random(dpt.size)
    for i, j in enumerate(dpt.tolist()):
        options = caisses.get(dpts[j].code, fallback)
        out.append(options[int(picks[i] * len(options))])
    return out


def _register_dates(
    rng: np.random.Generator, period: Period, birth_day: IntArray, death_day: IntArray
) -> tuple[IntArray, IntArray]:
    n = birth_day.size
    # The referential took its current form in the 2000s: older people entered it then, babies a few weeks
    # after birth.
    since = year_start(2004)
    spread = year_start(2012) - since
    ins = np.maximum(birth_day + rng.integers(7, 60, size=n), since + (rng.random(n) * spread).astype(np.int64))
    ins = np.minimum(ins, period.start - 1)
    lo = np.maximum(ins, period.start - 730)
    maj = lo + (rng.random(n) * (period.cutoff - lo)).astype(np.int64)
    dead = death_day >= 0
    maj[dead] = np.minimum(death_day[dead] + rng.integers(2, 30, size=int(dead.sum())), period.cutoff)
    return ins, maj


def draw_people(rng: np.random.Generator, period: Period, first_index: int, n: int, registry: NirRegistry) -> People:
    age, sex = _ages_and_sexes(rng, n)
    # Birth date consistent with the completed age on the first day of the period.
    birth_day = period.start - 1 - ((age + rng.random(n)) * 365.2425).astype(np.int64)
    dpt = rng.choice(len(departments()), size=n, p=department_weights())
    commune = _pick_communes(rng, dpt)
    dep_part, com_part = _birth_places(rng, age, dpt)
    birth_year = year_of(birth_day)
    birth_month = month_index(birth_day) % 12 + 1
    nir = registry.issue(rng, sex, birth_year, birth_month, dep_part, com_part)
    death_day = _deaths(rng, period, age, sex)
    registered, updated = _register_dates(rng, period, birth_day, death_day)
    return People(
        index=np.arange(first_index, first_index + n, dtype=np.int64),
        sex=sex,
        birth_day=birth_day,
        age=age,
        dpt=dpt,
        commune=commune,
        nir=nir,
        org=_orgs(rng, dpt),
        death_day=death_day,
        registered_day=registered,
        updated_day=updated,
    )
