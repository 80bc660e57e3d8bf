# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Each person's health profile: how much care they use, their long-term conditions and regular treatments.

Care use is heavy-tailed (a gamma-distributed intensity: most people see a doctor a few times a year, a few
very often) and U-shaped in age. Long-term conditions follow logistic prevalence curves in age, tied to the
intensity so that the sick are also the heavy users, and bring monthly dispensations, follow-up consultations,
lab monitoring and specialist visits. Some conditions are "affections de longue durée" (ALD): their care is
paid at 100 %.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np
import numpy.typing as npt

from hygie.synth.codes import drugs
from hygie.synth.population import People
from hygie.synth.providers import Kind, Providers

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

CHRONIC_SCALE = 0.66
"""Scales every prevalence so that about a quarter of adults have at least one long-term treatment."""
INTENSITY_SHAPE = 0.4
"""Gamma shape of the care-use intensity (mean 1): below 1, so the distribution is heavy-tailed."""


@dataclass(frozen=True)
class FollowUp:
    kind: Kind
    interval: tuple[int, int]
    """Days between visits (uniform in the range)."""
    share: float
    """Share of patients with the condition who are followed this way."""
    ccam: str = ""
    """Technical act done at the visit (CCAM code), if any."""
    ccam_share: float = 0.0


@dataclass(frozen=True)
class Condition:
    name: str
    atc: tuple[str, ...]
    """ATC prefixes of the drugs treating it (each patient gets one drug per group, see ``drug_groups``)."""
    peak: float
    """Prevalence at old age (the logistic curve's ceiling)."""
    midpoint: float
    scale: float
    men: float = 1.0
    women: float = 1.0
    min_age: int = 18
    max_age: int = 200
    flat: float = 0.0
    """Prevalence added at every eligible age."""
    ald_share: float = 0.0
    drug_groups: tuple[tuple[tuple[str, ...], float], ...] = ()
    """(ATC prefixes, probability) of each additional drug beyond the first group in ``atc``."""
    monitoring: tuple[str, ...] = ()
    """NABM lab acts checked regularly."""
    monitoring_interval: tuple[int, int] = (0, 0)
    follow_ups: tuple[FollowUp, ...] = field(default=())

    def prevalence(self, age: FloatArray, sex: IntArray) -> FloatArray:
        p = self.flat + self.peak / (1.0 + np.exp(-(age - self.midpoint) / self.scale))
        p = p * np.where(sex == 1, self.men, self.women)
        return np.where((age >= self.min_age) & (age <= self.max_age), p, 0.0)


CONDITIONS: tuple[Condition, ...] = (
    Condition(
        "hypertension", ("C09",), 0.5, 68, 9,
        drug_groups=((("C07",), 0.3), (("C03",), 0.25), (("C08",), 0.3)),
        monitoring=("1610", "593"), monitoring_interval=(300, 400),
        follow_ups=(FollowUp(Kind.CARDIOLOGY, (330, 400), 0.3, "DEQP003", 0.8),),
    ),
    Condition(
        "dyslipidaemia", ("C10AA",), 0.3, 65, 8, men=1.2, women=0.85,
        drug_groups=((("C10AX", "C10AB"), 0.1),),
        monitoring=("996", "522"), monitoring_interval=(300, 400),
    ),
    Condition(
        "diabetes", ("A10BA",), 0.15, 62, 9, men=1.3, women=0.8, ald_share=0.8,
        drug_groups=((("A10BB", "A10BH", "A10BK", "A10BD"), 0.35), (("A10BJ",), 0.12), (("A10AE",), 0.12),
                     (("A10AB",), 0.05)),
        monitoring=("1577", "552", "593"), monitoring_interval=(85, 125),
        follow_ups=(FollowUp(Kind.OPHTHALMOLOGY, (330, 420), 0.5, "BGQP002", 0.8),
                    FollowUp(Kind.ENDOCRINOLOGY, (150, 210), 0.25)),
    ),
    Condition(
        "hypothyroidism", ("H03AA",), 0.08, 55, 12, men=0.3, women=1.6,
        monitoring=("1208",), monitoring_interval=(150, 210),
    ),
    Condition(
        "atrial_fibrillation", ("B01AF", "B01AE"), 0.12, 82, 6, men=1.2, women=0.85, min_age=40,
        ald_share=0.6, monitoring=("593", "1104"), monitoring_interval=(150, 210),
        follow_ups=(FollowUp(Kind.CARDIOLOGY, (150, 210), 0.8, "DEQP003", 0.9),),
    ),
    Condition(
        "coronary_disease", ("B01AC",), 0.12, 72, 8, men=1.5, women=0.6, min_age=35, ald_share=0.3,
        drug_groups=((("C07AB",), 0.5),),
        follow_ups=(FollowUp(Kind.CARDIOLOGY, (150, 210), 0.7, "DEQP003", 0.9),),
    ),
    Condition(
        "asthma_copd", ("R03AC", "R03BA", "R03AK"), 0.07, 62, 12, flat=0.04, min_age=3,
        drug_groups=((("R03BB", "R03DC"), 0.25),),
        follow_ups=(FollowUp(Kind.PNEUMOLOGY, (330, 400), 0.3, "GLQP012", 0.7),),
    ),
    Condition(
        "depression", ("N06A",), 0.03, 40, 8, flat=0.03, women=1.5, men=0.7, min_age=15,
        follow_ups=(FollowUp(Kind.PSYCHIATRY, (25, 40), 0.2),),
    ),
    Condition(
        "psychosis", ("N05A",), 0.0, 40, 10, flat=0.008, min_age=16, ald_share=0.7,
        follow_ups=(FollowUp(Kind.PSYCHIATRY, (25, 40), 0.8),),
    ),
    Condition("reflux", ("A02BC",), 0.11, 60, 12),
    Condition(
        "osteoporosis", ("M05BA",), 0.12, 72, 7, men=0.0, women=1.0, drug_groups=((("A11CC",), 0.7),),
    ),
    Condition("prostate", ("G04C",), 0.25, 72, 8, men=1.0, women=0.0, min_age=45),
    Condition(
        "glaucoma", ("S01E",), 0.06, 72, 8,
        follow_ups=(FollowUp(Kind.OPHTHALMOLOGY, (150, 210), 0.9),),
    ),
    Condition("epilepsy", ("N03AX14", "N03AG", "N03AX09"), 0.0, 40, 10, flat=0.006, min_age=2, ald_share=0.5),
    Condition("neuropathic_pain", ("N03AX16",), 0.02, 65, 10),
    Condition("gout", ("M04AA",), 0.05, 60, 10, men=1.0, women=0.25),
    Condition("contraception", ("G03AA",), 0.0, 30, 5, flat=0.22, men=0.0, min_age=15, max_age=49),
    Condition("menopause", ("G03CA",), 0.0, 55, 5, flat=0.05, men=0.0, min_age=48, max_age=65),
    Condition("parkinson", ("N04B",), 0.02, 80, 6, ald_share=0.8),
    Condition(
        "inflammatory", ("L04AB", "L04AX"), 0.0, 45, 10, flat=0.004, ald_share=0.9,
        follow_ups=(FollowUp(Kind.RHEUMATOLOGY, (80, 110), 0.8),),
    ),
    Condition("hiv", ("J05A",), 0.0, 40, 10, flat=0.003, ald_share=1.0),
    Condition("leukaemia", ("L01E",), 0.0, 60, 10, flat=0.0005, ald_share=1.0),
)  # fmt: skip


@cache
def drugs_for(prefixes: tuple[str, ...], *, chronic: bool = True) -> IntArray:
    """Indices into codes.drugs() of drugs whose ATC code starts with one of ``prefixes``."""
    idx = [i for i, d in enumerate(drugs()) if d.chronic == chronic and d.atc.startswith(prefixes)]
    if not idx:
        raise LookupError(f"no drug in hygie/reference/drugs.csv for ATC {prefixes}")
    return np.array(idx, dtype=np.int64)


@dataclass(frozen=True)
class Health:
    intensity: FloatArray
    has: BoolArray
    """has[person, condition]."""
    ald: BoolArray
    """ald[person, condition]: the condition is an ALD for this person (care for it paid at 100 %)."""
    regimen_person: IntArray
    """Chronic treatment lines, sorted by person: who takes ..."""
    regimen_drug: IntArray
    """... which drug (index into codes.drugs()) ..."""
    regimen_condition: IntArray
    """... for which condition."""
    gp: IntArray
    """Regular GP of each person (index into Providers)."""
    pharmacy: IntArray
    lab: IntArray

    def regimen_slices(self, n: int) -> tuple[IntArray, IntArray]:
        """(first line, number of lines) of each person's regimen."""
        count = np.bincount(self.regimen_person, minlength=n).astype(np.int64)
        first = np.concatenate(([0], np.cumsum(count)[:-1])).astype(np.int64)
        return first, count


def draw_health(rng: np.random.Generator, people: People, providers: Providers) -> Health:
    n = people.size
    # A floor keeps almost everyone in contact with care over a year or two; the gamma part gives the tail.
    intensity = 0.15 + 0.85 * rng.gamma(INTENSITY_SHAPE, 1.0 / INTENSITY_SHAPE, size=n)
    age = people.age.astype(np.float64)
    # Frailty link: heavy users are more often chronically ill (and conversely).
    frailty = np.clip(0.55 + 0.45 * intensity, 0.45, 2.5)
    has = np.zeros((n, len(CONDITIONS)), dtype=bool)
    ald = np.zeros_like(has)
    reg_person: list[IntArray] = []
    reg_drug: list[IntArray] = []
    reg_cond: list[IntArray] = []
    for c, cond in enumerate(CONDITIONS):
        p = np.clip(cond.prevalence(age, people.sex) * frailty * CHRONIC_SCALE, 0.0, 0.95)
        has[:, c] = rng.random(n) < p
        ald[:, c] = has[:, c] & (rng.random(n) < cond.ald_share)
        who = np.flatnonzero(has[:, c])
        groups = ((cond.atc, 1.0), *cond.drug_groups)
        for prefixes, share in groups:
            takers = who[rng.random(who.size) < share]
            pool = drugs_for(prefixes)
            reg_person.append(takers)
            reg_drug.append(pool[rng.integers(0, pool.size, size=takers.size)])
            reg_cond.append(np.full(takers.size, c, dtype=np.int64))
    person = np.concatenate(reg_person)
    order = np.argsort(person, kind="stable")
    return Health(
        intensity=intensity,
        has=has,
        ald=ald,
        regimen_person=person[order],
        regimen_drug=np.concatenate(reg_drug)[order],
        regimen_condition=np.concatenate(reg_cond)[order],
        gp=providers.pick(rng, Kind.GP, people.dpt),
        pharmacy=providers.pick(rng, Kind.PHARMACY, people.dpt),
        lab=providers.pick(rng, Kind.LAB, people.dpt),
    )
