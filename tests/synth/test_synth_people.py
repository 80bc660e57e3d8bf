# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Beneficiaries: NIR, demography, identity columns, deaths."""

from __future__ import annotations

from collections import Counter
from datetime import date

import numpy as np
from faker.providers.person.fr_FR import Provider as PersonProvider
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.fr import nir as stdnum_nir

from hygie.ingest.contract import BENEFICIARY_TABLE
from hygie.synth.dates import Period
from hygie.synth.nir import NirRegistry
from hygie.synth.population import draw_people

from .checks import Delivery, code_list
from .conftest import PEOPLE, START, YEARS

CUTOFF = date(START + YEARS, 1, 1).toordinal() - 1


def _ben(delivery: Delivery) -> list[dict[str, str]]:
    return delivery.table(BENEFICIARY_TABLE)


def test_every_nir_valid_and_unique(delivery: Delivery) -> None:
    nirs = [r["BEN_NIR"] for r in _ben(delivery)]
    assert len(nirs) == PEOPLE == len(set(nirs))
    for nir in nirs:
        assert len(nir) == 15 and stdnum_nir.is_valid(nir), nir


def test_nir_coherent_with_sex_and_birth(delivery: Delivery) -> None:
    for r in _ben(delivery):
        nir = r["BEN_NIR"]
        born = date.fromisoformat(r["DATE_NAISSANCE"])
        assert nir[0] == r["BEN_SEX_COD"]
        assert nir[1:3] == f"{born.year % 100:02d}"
        assert nir[3:5] == f"{born.month:02d}" == r["BEN_NAI_MOI"]
        assert r["BEN_NAI_ANN"] == str(born.year)
        place = nir[5:7]
        assert place in ("2A", "2B", "97", "99") or (place.isdigit() and 1 <= int(place) <= 95 and place != "20")
        assert 1 <= int(nir[10:13]) <= 999


def test_most_people_born_near_home_some_abroad(delivery: Delivery) -> None:
    rows = _ben(delivery)
    abroad = sum(r["BEN_NIR"][5:7] == "99" for r in rows) / len(rows)
    assert 0.04 <= abroad <= 0.11
    home = sum(r["BEN_RES_DPT"].lstrip("0").startswith(r["BEN_NIR"][5:7].lstrip("0")) for r in rows) / len(rows)
    assert home >= 0.55


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([1, 2]),
            st.integers(1918, 2023),
            st.integers(1, 12),
            st.sampled_from(["75", "2A", "2B", "97", "99", "01", "13"]),
            st.integers(1, 999),
        ),
        min_size=1,
        max_size=40,
    ),
    st.integers(0, 2**32),
)
def test_registry_issues_valid_unique_nirs(people: list[tuple[int, int, int, str, int]], seed: int) -> None:
    registry = NirRegistry()
    rng = np.random.default_rng(seed)
    issued: list[str] = []
    for _ in range(2):  # two chunks share the registry
        sex = np.array([p[0] for p in people], dtype=np.int64)
        year = np.array([p[1] for p in people], dtype=np.int64)
        month = np.array([p[2] for p in people], dtype=np.int64)
        issued += registry.issue(rng, sex, year, month, [p[3] for p in people], [f"{p[4]:03d}" for p in people])
    assert len(set(issued)) == len(issued)
    assert all(stdnum_nir.is_valid(n) for n in issued)


def test_age_sex_pyramid(delivery: Delivery) -> None:
    rows = _ben(delivery)
    women = sum(r["BEN_SEX_COD"] == "2" for r in rows) / len(rows)
    assert 0.48 <= women <= 0.55
    # The shape itself, on a larger draw (cheap without the care).
    people = draw_people(np.random.default_rng(3), Period(START, 1), 0, 40_000, NirRegistry())
    age, sex = people.age, people.sex
    assert age.min() == 0 and 100 <= age.max() <= 105
    assert 0.511 <= (sex == 2).mean() <= 0.521  # 51.6 %
    assert 0.21 <= (age < 20).mean() <= 0.25  # INSEE 2024: ~23 %
    assert 0.20 <= (age >= 65).mean() <= 0.23  # ~21.5 %
    assert 0.028 <= (age >= 85).mean() <= 0.04  # ~3.3 %
    assert (sex[age >= 80] == 2).mean() > 0.58  # women live longer
    assert abs((sex[age < 20] == 2).mean() - 0.49) < 0.02  # more boys are born
    born = people.birth_day.astype("datetime64[D]").astype(object)
    start = date(START, 1, 1)
    completed = np.array([start.year - b.year - ((start.month, start.day) <= (b.month, b.day)) for b in born])
    assert (np.abs(completed - age) <= 1).all()


def test_residence_weighted_by_population(delivery: Delivery) -> None:
    by_dpt = Counter(r["BEN_RES_DPT"] for r in _ben(delivery))
    assert by_dpt["059"] > by_dpt["048"] and by_dpt["075"] > by_dpt["023"]
    big = sum(by_dpt[d] for d in ("059", "075", "013", "069", "092", "093", "033"))
    assert big / PEOPLE > 0.15


def test_residence_codes_coherent(delivery: Delivery) -> None:
    import csv

    from .checks import REFERENCE

    with (REFERENCE / "nomenclatures" / "IR_GEO_V.csv").open(encoding="utf-8", newline="") as f:
        communes = {(r["GEO_DPT_COD"], r["GEO_COM_COD"]) for r in csv.DictReader(f, delimiter=";")}
    for r in _ben(delivery):
        assert (r["BEN_RES_DPT"], r["BEN_RES_COM"]) in communes
        assert r["ORG_AFF_BEN"] in code_list("IR_ORG_V")
        cp, dpt = r["CODE_POSTAL"], r["BEN_RES_DPT"]
        assert len(cp) == 5 and cp.isdigit()
        if dpt.startswith("97"):
            assert cp.startswith(dpt)
        elif dpt in ("02A", "02B"):
            assert cp.startswith("20")
        else:
            assert cp.startswith(dpt[1:])


def test_identity_columns(delivery: Delivery) -> None:
    rows = _ben(delivery)
    emails = [r["EMAIL"] for r in rows]
    assert len(set(emails)) == len(emails)
    male, female = set(PersonProvider.first_names_male), set(PersonProvider.first_names_female)
    for r in rows:
        assert r["PRENOM"] in (male if r["BEN_SEX_COD"] == "1" else female)
        assert r["NOM"] and r["ADRESSE"] and r["COMMUNE"]
        assert "@" in r["EMAIL"] and " " not in r["EMAIL"]
        digits = r["TELEPHONE"].replace(" ", "")
        assert len(digits) == 10 and digits.startswith("0") and digits.isdigit()
    assert len({r["NOM"] for r in rows}) > 100


def test_register_dates(delivery: Delivery) -> None:
    for r in _ben(delivery):
        ins, maj = date.fromisoformat(r["BEN_DTE_INS"]), date.fromisoformat(r["BEN_DTE_MAJ"])
        assert date.fromisoformat(r["DATE_NAISSANCE"]) <= ins <= maj
        assert maj.toordinal() <= CUTOFF


def test_deaths(delivery: Delivery) -> None:
    rows = _ben(delivery)
    dead = [r for r in rows if r["BEN_DCD_DTE"]]
    for r in dead:
        d = date.fromisoformat(r["BEN_DCD_DTE"])
        assert r["BEN_DCD_AME"] == r["BEN_DCD_DTE"][:7]
        assert date(START, 1, 1) <= d and d.toordinal() <= CUTOFF
    assert all(r["BEN_DCD_AME"] == "" for r in rows if not r["BEN_DCD_DTE"])
    rate = len(dead) / len(rows) / YEARS
    assert 0.004 <= rate <= 0.016  # about 0.9 % a year
    ages_dead = [START - int(r["BEN_NAI_ANN"]) for r in dead]
    assert np.median(ages_dead) >= 70  # mortality rises with age
