# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Care events for a chunk of people, as claim lines (one future ER_PRS_F row each).

Acute care starts with a doctor contact drawn from a seasonal, weekday-shaped calendar; some contacts lead to
a dispensation, lab tests, a specialist or imaging. Long-term conditions add monthly dispensations, renewal
consultations, lab monitoring and specialist follow-up; screening adds mammograms, gynaecological check-ups
and flu shots. Nothing happens before the period, on a day a pharmacy or office would be shut (mostly), or
after a person's death.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from hygie.synth.claims import ClaimBook, Detail, Lines
from hygie.synth.codes import ccam_acts, drugs, nabm_coefficients
from hygie.synth.conditions import CONDITIONS, Health
from hygie.synth.dates import SATURDAY, SUNDAY, Period, weekday, year_start
from hygie.synth.geography import department_weights, departments
from hygie.synth.population import People
from hygie.synth.providers import Kind, Providers
from hygie.synth.tariffs import (
    ACUTE_LAB,
    ALD_RELATED,
    B_LETTER_CENTS,
    BLOOD_FORFAIT,
    CCAM_TARIFF_CENTS,
    DOCTOR_RATE,
    FLU_VACCINE_ATC,
    GP_CONSULTATION,
    HCG,
    HOME_VISIT,
    IMAGING,
    IMAGING_MIX,
    LAB_RATE,
    LAB_TEST,
    NOT_EXEMPT,
    PREVENTION,
    PSA,
    PSYCHIATRIST_CONSULTATION,
    SAMPLING_FORFAIT,
    SPECIALIST_ACT,
    SPECIALIST_CONSULTATION,
    TARIFF_LOOKUP,
    TECHNICAL_ACT,
    acute_drugs,
    ccam_codes,
    check_codes,
    drug_arrays,
)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

# Share of Saturdays each kind of place is open.
PHARMACY_SATURDAY, LAB_SATURDAY, OFFICE_SATURDAY = 0.85, 0.55, 0.3

# Acute doctor contacts a year for someone of mean intensity, by age (U-shaped: infants and the old).
ACUTE_CONTACTS = 3.6
_AGE_KNOTS = np.array([0, 2, 6, 16, 26, 46, 61, 76, 86, 106])
_AGE_FACTOR = np.array([2.6, 1.6, 0.9, 0.7, 0.85, 1.0, 1.25, 1.6, 1.9, 1.9])

# Specialist referral mix: (kind, weight, who: 0 anyone, 1 men, 2 adult women, 3 children, 4 adults).
REFERRALS = (
    (Kind.DERMATOLOGY, 0.14, 0),
    (Kind.OPHTHALMOLOGY, 0.16, 0),
    (Kind.CARDIOLOGY, 0.12, 4),
    (Kind.GYNECOLOGY, 0.25, 2),
    (Kind.ENT, 0.09, 0),
    (Kind.RHEUMATOLOGY, 0.07, 4),
    (Kind.GASTROENTEROLOGY, 0.07, 4),
    (Kind.PNEUMOLOGY, 0.05, 0),
    (Kind.PSYCHIATRY, 0.08, 4),
    (Kind.ENDOCRINOLOGY, 0.04, 4),
    (Kind.PEDIATRICS, 0.6, 3),
)


def _age_factor(age: IntArray) -> FloatArray:
    return np.asarray(np.interp(age, _AGE_KNOTS, _AGE_FACTOR), dtype=np.float64)


def _open_day(rng: np.random.Generator, day: IntArray, saturday: float, *, forward_only: bool = False) -> IntArray:
    """Move days when the place is shut: Sundays (but for a few on-call), and Saturdays for all but a share
    ``saturday`` of them (pharmacies mostly open, labs half, doctors' offices a third).

    Displaced care spreads over the next days (or the previous ones) rather than piling up on Mondays. Care
    following a prescription only moves forward, so it never precedes the prescription.
    """
    n = day.size
    wd = weekday(day)
    u = rng.random(n)
    back = np.zeros(n, dtype=bool) if forward_only else rng.random(n) < 0.5
    spread = rng.integers(0, 3, size=n)
    sunday = (wd == SUNDAY) & (u < 0.995)
    closed_saturday = (wd == SATURDAY) & (u >= saturday)
    to_saturday = rng.random(n) < saturday
    sunday_shift = np.where(back, np.where(to_saturday, -1, -2 - spread // 2), 1 + spread)
    saturday_shift = np.where(back, -1 - spread // 2, 2 + spread)
    return day + np.where(sunday, sunday_shift, np.where(closed_saturday, saturday_shift, 0))


def _periodic(
    rng: np.random.Generator, who: IntArray, interval: tuple[int, int], start: int, last: IntArray
) -> tuple[IntArray, IntArray]:
    """Recurring events every ``interval`` days (uniform) from a random phase, up to each person's last day.

    Returns (person, day) pairs.
    """
    lo, hi = interval
    if who.size == 0:
        return who, who
    horizon = int(last[who].max()) - start + 1
    k = horizon // lo + 2
    steps = rng.integers(lo, hi + 1, size=(who.size, k))
    steps[:, 0] = rng.integers(0, hi, size=who.size)
    days = start + np.cumsum(steps, axis=1)
    ok = days <= last[who][:, None]
    return np.repeat(who, k)[ok.ravel()], days[ok]


def _ragged(counts: IntArray) -> tuple[IntArray, IntArray]:
    """For groups of ``counts`` elements: (group of each element, rank of each element within its group)."""
    group = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    starts = np.cumsum(counts) - counts
    return group, np.arange(group.size, dtype=np.int64) - starts[group]


class CareModel:
    """Draws every claim line of a chunk of people."""

    def __init__(self, period: Period, providers: Providers) -> None:
        check_codes()
        self.period = period
        self.providers = providers
        w = period.office_day_weights()
        self.office_cdf = np.cumsum(w)
        self.coefficients = nabm_coefficients()
        self.ccam_index = {c: i for i, c in enumerate(ccam_codes())}
        self.ccam_nat = np.array(
            [IMAGING if ccam_acts()[c] == "ADI" else TECHNICAL_ACT for c in ccam_codes()], dtype=np.int64
        )
        self.ccam_price = np.array([CCAM_TARIFF_CENTS[c] for c in ccam_codes()], dtype=np.int64)

    # -- entry point -------------------------------------------------------------------------------------------

    def draw(self, rng: np.random.Generator, people: People, health: Health) -> Lines:
        out = ClaimBook()
        last = people.last_day(self.period)
        self._acute(rng, out, people, health, last)
        self._chronic(rng, out, people, health, last)
        self._screening(rng, out, people, health, last)
        lines = out.lines()
        keep = (lines.day >= self.period.start) & (lines.day <= last[lines.person])
        keep &= (lines.pre_day < 0) | (lines.pre_day <= lines.day)
        return lines.take(np.flatnonzero(keep))

    # -- building blocks ---------------------------------------------------------------------------------------

    def _consultations(
        self,
        out: ClaimBook,
        person: IntArray,
        day: IntArray,
        exe: IntArray,
        nat: IntArray | int,
        rate: IntArray | int = DOCTOR_RATE,
        exo: IntArray | int = NOT_EXEMPT,
    ) -> None:
        tariff = TARIFF_LOOKUP[np.broadcast_to(np.asarray(nat, dtype=np.int64), person.shape)]
        out.add(
            person=person,
            day=day,
            exe=exe,
            nat=nat,
            unit=tariff,
            rate=rate,
            exo=exo,
            overfee=self.providers.overfee_cents[exe],
        )

    def _ccam(
        self,
        out: ClaimBook,
        person: IntArray,
        day: IntArray,
        exe: IntArray,
        act: IntArray,
        pre: IntArray | int = -1,
        pre_day: IntArray | int = -1,
        rate: IntArray | int = DOCTOR_RATE,
        exo: IntArray | int = NOT_EXEMPT,
    ) -> None:
        out.add(
            person=person,
            day=day,
            exe=exe,
            pre=pre,
            pre_day=pre_day,
            nat=self.ccam_nat[act],
            unit=self.ccam_price[act],
            rate=rate,
            exo=exo,
            detail=Detail.CCAM,
            item=act,
        )

    def _lab(
        self,
        out: ClaimBook,
        person: IntArray,
        day: IntArray,
        exe: IntArray,
        tests: npt.NDArray[np.bool_],
        codes: list[str],
        pre: IntArray,
        pre_day: IntArray,
        rate: IntArray | int = LAB_RATE,
        exo: IntArray | int = NOT_EXEMPT,
    ) -> None:
        """One claim per row of ``tests`` (a boolean matrix over ``codes``) plus the blood forfait."""
        with_forfait = np.concatenate([tests, np.ones((tests.shape[0], 1), dtype=bool)], axis=1)
        code_arr = np.array([int(c) for c in [*codes, BLOOD_FORFAIT]], dtype=np.int64)
        coef = np.array([self.coefficients[c] for c in [*codes, BLOOD_FORFAIT]], dtype=np.int64)
        line_claim, col = np.nonzero(with_forfait)
        rate_l = np.broadcast_to(np.asarray(rate, dtype=np.int64), person.shape)[line_claim]
        exo_l = np.broadcast_to(np.asarray(exo, dtype=np.int64), person.shape)[line_claim]
        out.add(
            person=person,
            day=day,
            exe=exe,
            pre=pre,
            pre_day=pre_day,
            line_claim=line_claim.astype(np.int64),
            nat=LAB_TEST,
            unit=B_LETTER_CENTS,
            cft=coef[col],
            rate=rate_l,
            exo=exo_l,
            detail=Detail.LAB,
            item=code_arr[col],
        )

    def _dispense(
        self,
        out: ClaimBook,
        person: IntArray,
        day: IntArray,
        exe: IntArray,
        pre: IntArray,
        pre_day: IntArray,
        line_claim: IntArray,
        drug: IntArray,
        qty: IntArray | int,
        ald: npt.NDArray[np.bool_] | None = None,
        exo: IntArray | int = NOT_EXEMPT,
        rate: IntArray | None = None,
    ) -> None:
        price, drug_rate, nat = drug_arrays()
        r = drug_rate[drug] if rate is None else rate
        e = np.broadcast_to(np.asarray(exo, dtype=np.int64), drug.shape)
        if ald is not None:
            r = np.where(ald, 100, r)
            e = np.where(ald, ALD_RELATED, e)
        out.add(
            person=person,
            day=day,
            exe=exe,
            pre=pre,
            pre_day=pre_day,
            line_claim=line_claim,
            nat=nat[drug],
            unit=price[drug],
            qty=qty,
            rate=r,
            exo=e,
            detail=Detail.PHARMACY,
            item=drug,
        )

    # -- acute care --------------------------------------------------------------------------------------------

    def _acute(self, rng: np.random.Generator, out: ClaimBook, people: People, health: Health, last: IntArray) -> None:
        p = self.period
        window = last - p.start + 1
        mass = self.office_cdf[window - 1] / self.office_cdf[-1]
        mean = health.intensity * _age_factor(people.age) * ACUTE_CONTACTS * p.years * mass
        count = rng.poisson(mean)
        person = np.repeat(np.arange(people.size, dtype=np.int64), count)
        u = rng.random(person.size) * self.office_cdf[window[person] - 1]
        day = p.start + np.searchsorted(self.office_cdf, u, side="right").astype(np.int64)
        age = people.age[person]
        dpt = people.dpt[person]
        # Away from home (holidays, work) a few contacts go to a GP elsewhere.
        away = rng.random(person.size) < 0.04
        where = dpt.copy()
        where[away] = rng.choice(len(departments()), size=int(away.sum()), p=department_weights())
        pediatric = (age < 16) & (rng.random(person.size) < 0.3)
        gp = np.where(away, self.providers.pick(rng, Kind.GP, where), health.gp[person])
        exe = np.where(pediatric, self.providers.pick(rng, Kind.PEDIATRICS, dpt), gp)
        visit_p = np.select([age >= 85, age >= 75], [0.35, 0.12], 0.02)
        nat = np.where(
            pediatric,
            SPECIALIST_CONSULTATION,
            np.where(rng.random(person.size) < visit_p, HOME_VISIT, GP_CONSULTATION),
        )
        self._consultations(out, person, day, exe, nat)

        # A prescription filled at the pharmacy, mostly the same day.
        rx = np.flatnonzero(rng.random(person.size) < np.where(age < 16, 0.78, 0.7))
        self._acute_dispensation(rng, out, people, health, person[rx], day[rx], exe[rx], where[rx])
        # Lab tests a few days later.
        lab = np.flatnonzero(rng.random(person.size) < 0.07 + 0.0012 * age)
        self._acute_lab(rng, out, people, health, person[lab], day[lab], exe[lab])
        # Referral to a specialist (weeks later), imaging (days later).
        ref = np.flatnonzero(rng.random(person.size) < 0.08)
        self._referral(rng, out, people, person[ref], day[ref])
        img = np.flatnonzero(rng.random(person.size) < 0.04 + 0.0008 * age)
        self._imaging(rng, out, people, person[img], day[img], exe[img])

    def _acute_dispensation(
        self,
        rng: np.random.Generator,
        out: ClaimBook,
        people: People,
        health: Health,
        person: IntArray,
        rx_day: IntArray,
        prescriber: IntArray,
        where: IntArray,
    ) -> None:
        m = person.size
        delay = rng.choice(3, size=m, p=[0.8, 0.15, 0.05])
        day = _open_day(rng, rx_day + delay, PHARMACY_SATURDAY, forward_only=True)
        regular = rng.random(m) < 0.85
        exe = np.where(
            regular & (where == people.dpt[person]),
            health.pharmacy[person],
            self.providers.pick(rng, Kind.PHARMACY, where),
        )
        n_lines = 1 + np.minimum(rng.poisson(1.1, size=m), 4)
        line_claim, _ = _ragged(n_lines)
        idx, cdf = acute_drugs()
        drug = idx[np.searchsorted(cdf, rng.random(line_claim.size) * cdf[-1], side="right")]
        # The same drug twice on one prescription would be one line with two boxes.
        key = line_claim * 1_000_000 + drug
        _, first = np.unique(key, return_index=True)
        first.sort()
        line_claim, drug = line_claim[first], drug[first]
        qty = rng.choice([1, 2, 3], size=line_claim.size, p=[0.8, 0.17, 0.03])
        self._dispense(out, person, day, exe, prescriber, rx_day, line_claim, drug, qty)

    def _acute_lab(
        self,
        rng: np.random.Generator,
        out: ClaimBook,
        people: People,
        health: Health,
        person: IntArray,
        rx_day: IntArray,
        prescriber: IntArray,
    ) -> None:
        m = person.size
        day = _open_day(rng, rx_day + rng.integers(1, 11, size=m), LAB_SATURDAY, forward_only=True)
        exe = np.where(rng.random(m) < 0.9, health.lab[person], self.providers.pick(rng, Kind.LAB, people.dpt[person]))
        codes = [c for c, _ in ACUTE_LAB] + [PSA, HCG, SAMPLING_FORFAIT]
        probs = np.array([p for _, p in ACUTE_LAB])
        age, sex = people.age[person], people.sex[person]
        psa = np.where((sex == 1) & (age >= 50), 0.3, 0.0)
        hcg = np.where((sex == 2) & (age >= 15) & (age <= 45), 0.08, 0.0)
        p = np.column_stack([np.broadcast_to(probs, (m, probs.size)), psa, hcg, np.full(m, 0.5)])
        tests = rng.random(p.shape) < p
        tests[:, 0] |= ~tests[:, : len(ACUTE_LAB)].any(axis=1)
        self._lab(out, person, day, exe, tests, codes, prescriber, rx_day)

    def _referral(
        self, rng: np.random.Generator, out: ClaimBook, people: People, person: IntArray, gp_day: IntArray
    ) -> None:
        m = person.size
        age, sex = people.age[person], people.sex[person]
        child = age < 16
        eligible = np.column_stack(
            [
                {0: np.ones(m, bool), 1: sex == 1, 2: (sex == 2) & ~child, 3: child, 4: ~child}[who]
                for _, _, who in REFERRALS
            ]
        )
        w = eligible * np.array([wt for _, wt, _ in REFERRALS])
        cardiology = [k for k, _, _ in REFERRALS].index(Kind.CARDIOLOGY)
        w[:, cardiology] *= np.interp(age, [0, 40, 70, 90], [0.2, 0.6, 2.0, 2.5])  # rises with age
        cdf = np.cumsum(w, axis=1)
        choice = (cdf < rng.random(m)[:, None] * cdf[:, -1:]).sum(axis=1)
        kinds = np.array([k for k, _, _ in REFERRALS], dtype=np.int64)[choice]
        day = _open_day(rng, gp_day + rng.integers(7, 91, size=m), OFFICE_SATURDAY, forward_only=True)
        exe = self.providers.pick(rng, kinds, people.dpt[person])
        nat = np.where(kinds == Kind.PSYCHIATRY, PSYCHIATRIST_CONSULTATION, SPECIALIST_CONSULTATION)
        self._consultations(out, person, day, exe, nat)
        self._specialist_acts(rng, out, person, day, exe, kinds)

    def _specialist_acts(
        self,
        rng: np.random.Generator,
        out: ClaimBook,
        person: IntArray,
        day: IntArray,
        exe: IntArray,
        kinds: IntArray,
        rate: IntArray | int = DOCTOR_RATE,
        exo: IntArray | int = NOT_EXEMPT,
    ) -> None:
        u = rng.random(person.size)
        rate_a = np.broadcast_to(np.asarray(rate, dtype=np.int64), person.shape)
        exo_a = np.broadcast_to(np.asarray(exo, dtype=np.int64), person.shape)
        for kind, (code, share) in SPECIALIST_ACT.items():
            sel = np.flatnonzero((kinds == kind) & (u < share))
            act = np.full(sel.size, self.ccam_index[code], dtype=np.int64)
            self._ccam(out, person[sel], day[sel], exe[sel], act, rate=rate_a[sel], exo=exo_a[sel])

    def _imaging(
        self,
        rng: np.random.Generator,
        out: ClaimBook,
        people: People,
        person: IntArray,
        rx_day: IntArray,
        prescriber: IntArray,
    ) -> None:
        m = person.size
        mix = list(IMAGING_MIX)
        w = np.array(list(IMAGING_MIX.values()))
        act = np.array([self.ccam_index[c] for c in mix], dtype=np.int64)[rng.choice(len(mix), size=m, p=w / w.sum())]
        day = _open_day(rng, rx_day + rng.integers(1, 22, size=m), OFFICE_SATURDAY, forward_only=True)
        exe = self.providers.pick(rng, Kind.RADIOLOGY, people.dpt[person])
        self._ccam(out, person, day, exe, act, pre=prescriber, pre_day=rx_day)

    # -- long-term conditions ----------------------------------------------------------------------------------

    def _chronic(
        self, rng: np.random.Generator, out: ClaimBook, people: People, health: Health, last: IntArray
    ) -> None:
        p = self.period
        n = people.size
        first, count = health.regimen_slices(n)
        # Monthly dispensations of every regular treatment; a few months are missed.
        treated = np.flatnonzero(count > 0)
        person, day = _periodic(rng, treated, (28, 31), p.start, last)
        keep = rng.random(person.size) >= 0.06
        person, day = person[keep], _open_day(rng, day[keep], PHARMACY_SATURDAY)
        line_claim, rank = _ragged(count[person])
        reg = first[person][line_claim] + rank
        drug = health.regimen_drug[reg]
        ald = health.ald[person[line_claim], health.regimen_condition[reg]]
        exe = np.where(
            rng.random(person.size) < 0.95,
            health.pharmacy[person],
            self.providers.pick(rng, Kind.PHARMACY, people.dpt[person]),
        )
        pre_day = np.maximum(day - rng.integers(0, 90, size=person.size), people.birth_day[person])
        self._dispense(out, person, day, exe, health.gp[person], pre_day, line_claim, drug, 1, ald=ald)

        # Renewal consultations with the regular GP every three months or so.
        ill = np.asarray(health.has.any(axis=1), dtype=bool)
        any_ald = np.asarray(health.ald.any(axis=1), dtype=bool)
        person, day = _periodic(rng, np.flatnonzero(ill), (75, 105), p.start, last)
        day = _open_day(rng, day, OFFICE_SATURDAY)
        age = people.age[person]
        nat = np.where(rng.random(person.size) < np.where(age >= 80, 0.35, 0.02), HOME_VISIT, GP_CONSULTATION)
        self._consultations(
            out,
            person,
            day,
            health.gp[person],
            nat,
            rate=np.where(any_ald[person], 100, DOCTOR_RATE),
            exo=np.where(any_ald[person], ALD_RELATED, NOT_EXEMPT),
        )

        for c, cond in enumerate(CONDITIONS):
            who = np.flatnonzero(health.has[:, c])
            ald_c = health.ald[:, c]
            if cond.monitoring:
                person, day = _periodic(rng, who, cond.monitoring_interval, p.start, last)
                day = _open_day(rng, day, LAB_SATURDAY)
                rx_day = np.maximum(day - rng.integers(0, 15, size=person.size), people.birth_day[person])
                tests = np.ones((person.size, len(cond.monitoring)), dtype=bool)
                self._lab(
                    out,
                    person,
                    day,
                    health.lab[person],
                    tests,
                    list(cond.monitoring),
                    health.gp[person],
                    rx_day,
                    rate=np.where(ald_c[person], 100, LAB_RATE),
                    exo=np.where(ald_c[person], ALD_RELATED, NOT_EXEMPT),
                )
            for fu in cond.follow_ups:
                followed = who[rng.random(who.size) < fu.share]
                # Each patient keeps the same specialist.
                own = np.full(n, -1, dtype=np.int64)
                own[followed] = self.providers.pick(rng, fu.kind, people.dpt[followed])
                person, day = _periodic(rng, followed, fu.interval, p.start, last)
                day = _open_day(rng, day, OFFICE_SATURDAY)
                rate = np.where(ald_c[person], 100, DOCTOR_RATE)
                exo = np.where(ald_c[person], ALD_RELATED, NOT_EXEMPT)
                fu_nat = PSYCHIATRIST_CONSULTATION if fu.kind == Kind.PSYCHIATRY else SPECIALIST_CONSULTATION
                self._consultations(out, person, day, own[person], fu_nat, rate=rate, exo=exo)
                if fu.ccam:
                    sel = np.flatnonzero(rng.random(person.size) < fu.ccam_share)
                    act = np.full(sel.size, self.ccam_index[fu.ccam], dtype=np.int64)
                    self._ccam(out, person[sel], day[sel], own[person[sel]], act, rate=rate[sel], exo=exo[sel])

    # -- prevention --------------------------------------------------------------------------------------------

    def _screening(
        self, rng: np.random.Generator, out: ClaimBook, people: People, health: Health, last: IntArray
    ) -> None:
        p = self.period
        n = people.size
        age, sex = people.age, people.sex
        women = sex == 2
        # Organised breast-cancer screening, women 50-74, every two years, about half take part.
        who = np.flatnonzero(women & (age >= 50) & (age <= 74) & (rng.random(n) < 0.5))
        person, day = _periodic(rng, who, (700, 760), p.start, last)
        day = _open_day(rng, day, OFFICE_SATURDAY)
        exe = self.providers.pick(rng, Kind.RADIOLOGY, people.dpt[person])
        act = np.full(person.size, self.ccam_index["QEQK004"], dtype=np.int64)
        self._ccam(out, person, day, exe, act, rate=100, exo=PREVENTION)
        # Yearly gynaecological check-up with a smear now and then.
        who = np.flatnonzero(women & (age >= 20) & (age <= 69) & (rng.random(n) < 0.3))
        own = np.full(n, -1, dtype=np.int64)
        own[who] = self.providers.pick(rng, Kind.GYNECOLOGY, people.dpt[who])
        person, day = _periodic(rng, who, (330, 400), p.start, last)
        day = _open_day(rng, day, OFFICE_SATURDAY)
        self._consultations(out, person, day, own[person], SPECIALIST_CONSULTATION)
        kinds = np.full(person.size, int(Kind.GYNECOLOGY), dtype=np.int64)
        self._specialist_acts(rng, out, person, day, own[person], kinds)
        # Flu shots each autumn for people 65 and over, paid in full.
        flu = [i for i, d in enumerate(drugs()) if d.atc == FLU_VACCINE_ATC]
        if flu:
            for y in range(p.years):
                takers = np.flatnonzero((age + y >= 65) & (rng.random(n) < 0.55))
                autumn = year_start(p.start_year + y) + 282  # around October 10th
                day = _open_day(
                    rng, autumn + (rng.beta(1.5, 4.0, size=takers.size) * 80).astype(np.int64), PHARMACY_SATURDAY
                )
                ok = day <= last[takers]
                takers, day = takers[ok], day[ok]
                one = np.arange(takers.size, dtype=np.int64)
                self._dispense(
                    out,
                    takers,
                    day,
                    health.pharmacy[takers],
                    health.gp[takers],
                    np.maximum(day - 20, people.birth_day[takers]),
                    one,
                    np.full(takers.size, flu[0], dtype=np.int64),
                    1,
                    exo=PREVENTION,
                    rate=np.full(takers.size, 100, dtype=np.int64),
                )
