# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Care rows: keys and detail rows, dates, amounts, codes, realism of the distributions."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from datetime import date

import numpy as np
from stdnum import ean

from hygie.ingest.contract import BENEFICIARY_TABLE, CARE_TABLE, DCIR_KEYS, DETAIL_TABLES
from hygie.synth.codes import DRUGS_FILE

from .checks import Delivery, code_list
from .conftest import START, YEARS

CUTOFF = date(START + YEARS, 1, 1)
PHARMACY = {"3311", "3312", "3313"}
DETAIL_NATURES = {"ER_PHA_F": PHARMACY, "ER_BIO_F": {"3211"}, "ER_CAM_F": {"1351", "1352"}}


def _key(row: dict[str, str]) -> tuple[str, ...]:
    return tuple(row[k] for k in DCIR_KEYS)


def _d(s: str) -> date:
    return date.fromisoformat(s)


def _drugs() -> list[dict[str, str]]:
    with DRUGS_FILE.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def test_drug_reference() -> None:
    with DRUGS_FILE.open(encoding="utf-8") as f:
        head = f.readline()
    assert head.startswith("#") and "SYNTHETIC" in head
    drugs = _drugs()
    assert 120 <= len(drugs) <= 250
    assert list(drugs[0]) == ["PHA_PRS_C13", "PHA_ATC_C07", "PHA_ATC_LIB", "CHRONIC", "UNIT_PRICE", "RATE"]
    codes = [d["PHA_PRS_C13"] for d in drugs]
    assert len(set(codes)) == len(codes)
    for d in drugs:
        assert d["PHA_PRS_C13"].startswith("34009") and len(d["PHA_PRS_C13"]) == 13
        assert ean.is_valid(d["PHA_PRS_C13"])
        atc = d["PHA_ATC_C07"]
        assert len(atc) == 7 and atc[0].isalpha() and atc[1:3].isdigit() and atc[3:5].isalpha()
        assert d["CHRONIC"] in ("0", "1") and d["RATE"] in ("30", "65", "100")
        assert float(d["UNIT_PRICE"]) > 0
    atcs = {d["PHA_ATC_C07"] for d in drugs}
    for needed in ("A10BA02", "H03AA01", "N02BE01", "J01CA04"):
        assert needed in atcs
    for prefix in ("C10AA", "A10A", "C09", "C07", "C03", "N06AB", "R03", "B01AF", "A02BC"):
        assert any(a.startswith(prefix) for a in atcs)


def test_nine_keys_unique_and_details_have_parents(delivery: Delivery) -> None:
    seen: set[tuple[str, ...]] = set()
    for batch in delivery.batches()[1:]:
        parents = {_key(r): r for r in delivery.rows[(batch, CARE_TABLE)]}
        assert len(parents) == len(delivery.rows[(batch, CARE_TABLE)])
        assert not seen & parents.keys()
        seen |= parents.keys()
        for table in DETAIL_TABLES:
            keys = [_key(r) for r in delivery.rows[(batch, table)]]
            assert len(set(keys)) == len(keys)
            for k in keys:
                assert k in parents, (batch, table, k)
                assert parents[k]["PRS_NAT_REF"] in DETAIL_NATURES[table]
        # Every pharmacy, lab and CCAM row has its detail row; consultations have none.
        detailed = {_key(r) for t in DETAIL_TABLES for r in delivery.rows[(batch, t)]}
        for k, r in parents.items():
            assert (k in detailed) == (r["PRS_NAT_REF"] in set().union(*DETAIL_NATURES.values()))


def test_decomptes_number_their_lines(delivery: Delivery) -> None:
    lines: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for r in delivery.table(CARE_TABLE):
        head = tuple(r[k] for k in DCIR_KEYS if k != "PRS_ORD_NUM")
        lines[head].append(int(r["PRS_ORD_NUM"]))
    for orders in lines.values():
        assert sorted(orders) == list(range(1, len(orders) + 1))
    assert max(len(o) for o in lines.values()) > 1


def test_batches_hold_their_flow_month(delivery: Delivery) -> None:
    for (batch, _table), rows in delivery.rows.items():
        if batch.startswith("flow-"):
            assert all(r["FLX_DIS_DTD"][:7] == batch[5:] for r in rows)


def test_dates_are_ordered_and_in_range(delivery: Delivery) -> None:
    ben = {r["BEN_NIR"]: r for r in delivery.table(BENEFICIARY_TABLE)}
    for r in delivery.table(CARE_TABLE):
        care, treated, flow = _d(r["EXE_SOI_DTD"]), _d(r["FLX_TRT_DTD"]), _d(r["FLX_DIS_DTD"])
        assert date(START, 1, 1) <= care <= treated <= flow < CUTOFF
        assert r["EXE_SOI_DTF"] == r["EXE_SOI_DTD"] and r["EXE_SOI_AMD"] == r["EXE_SOI_DTD"][:7]
        if r["PRE_PRE_DTD"]:
            assert _d(r["PRE_PRE_DTD"]) <= care
        b = ben[r["BEN_NIR"]]
        assert _d(b["DATE_NAISSANCE"]) <= care
        if b["BEN_DCD_DTE"]:
            assert care <= _d(b["BEN_DCD_DTE"]), "care after death"


def test_care_rows_carry_the_beneficiary(delivery: Delivery) -> None:
    ben = {r["BEN_NIR"]: r for r in delivery.table(BENEFICIARY_TABLE)}
    for r in delivery.table(CARE_TABLE):
        b = ben[r["BEN_NIR"]]
        for c in ("BEN_RNG_GEM", "BEN_SEX_COD", "BEN_NAI_ANN", "BEN_RES_DPT", "BEN_RES_COM", "ORG_AFF_BEN"):
            assert r[c] == b[c]
        assert r["ORG_CLE_NUM"] == b["ORG_AFF_BEN"]
        born, care = _d(b["DATE_NAISSANCE"]), _d(r["EXE_SOI_DTD"])
        months = (care.year - born.year) * 12 + care.month - born.month
        assert int(r["BEN_AMA_COD"]) == (1000 + months if months < 24 else months // 12)


def test_codes_in_code_lists(delivery: Delivery) -> None:
    rows = delivery.table(CARE_TABLE)
    for r in rows:
        assert r["PRS_NAT_REF"] == r["BSE_PRS_NAT"] and r["PRS_NAT_REF"] in code_list("IR_NAT_V")
        assert r["PSE_SPE_COD"] in code_list("IR_SPE_V") and r["PSE_ACT_NAT"] in code_list("IR_ACT_V")
        assert r["EXO_MTF"] in code_list("IR_EXO_V") and r["BSE_REM_SGN"] in code_list("IR_SGN_V")
        assert r["FLX_EMT_TYP"] in code_list("IR_TYT_V") and r["ORG_CLE_NUM"] in code_list("IR_ORG_V")
        assert len(r["PFS_EXE_NUM"]) == 9 and len(r["PFS_PRE_NUM"]) in (0, 9)
    drugs = {d["PHA_PRS_C13"] for d in _drugs()}
    assert {r["PHA_PRS_C13"] for r in delivery.table("ER_PHA_F")} <= drugs
    assert {r["BIO_PRS_IDE"] for r in delivery.table("ER_BIO_F")} <= code_list("IR_BIO_R")
    assert {r["CAM_PRS_IDE"] for r in delivery.table("ER_CAM_F")} <= code_list("IR_CCAM_V63")
    natures = Counter(r["PRS_NAT_REF"] for r in rows)
    for nat in ("1111", "1112", "1211", "3313", "3312", "3211", "1351", "1352"):
        assert natures[nat] > 0, nat


def test_specialties_match_the_care(delivery: Delivery) -> None:
    for r in delivery.table(CARE_TABLE):
        nat, spe, act = r["PRS_NAT_REF"], r["PSE_SPE_COD"], r["PSE_ACT_NAT"]
        if nat in PHARMACY:
            assert act == "50" and r["PFS_PRE_NUM"]  # pharmacies, on prescription
        elif nat == "3211":
            assert act == "30" and spe == "38" and r["PFS_PRE_NUM"]
        elif nat == "1111":
            assert spe == "1"
        elif nat == "1351":
            assert spe == "6"  # radiologists do the imaging


def test_amounts(delivery: Delivery) -> None:
    for r in delivery.table(CARE_TABLE):
        paid, base, refund = (float(r[c]) for c in ("PRS_PAI_MNT", "BSE_REM_BSE", "BSE_REM_MNT"))
        if r["BSE_REM_SGN"] == "1":
            assert paid >= base >= refund >= 0
            assert abs(refund - round(base * float(r["RGO_REM_TAU"]) / 100, 2)) <= 0.011
        else:
            assert paid <= base <= refund <= 0
        if r["EXO_MTF"] == "42":
            assert r["RGO_REM_TAU"] == "100"
        if r["PRS_NAT_REF"] == "1111":
            assert r["BSE_REM_PRU"] == "30.00" and r["RGO_REM_TAU"] in ("70", "100")


def test_regularisations(delivery: Delivery) -> None:
    pha = {_key(r): r for r in delivery.table("ER_PHA_F")}
    care = delivery.table(CARE_TABLE)
    negatives = [r for r in care if r["BSE_REM_SGN"] == "2"]
    assert negatives, "no correcting rows"
    originals: dict[tuple[str, str, str], list[dict[str, str]]] = defaultdict(list)
    for r in care:
        if r["BSE_REM_SGN"] == "1" and _key(r) in pha:
            originals[(r["BEN_NIR"], r["EXE_SOI_DTD"], pha[_key(r)]["PHA_PRS_C13"])].append(r)
    for r in negatives:
        detail = pha[_key(r)]
        assert int(detail["PHA_ACT_QSN"]) < 0 and float(r["PRS_PAI_MNT"]) < 0
        assert float(r["PRS_ACT_QTE"]) > 0  # unsigned: the sign is in BSE_REM_SGN
        matches = originals[(r["BEN_NIR"], r["EXE_SOI_DTD"], detail["PHA_PRS_C13"])]
        assert any(_d(o["FLX_DIS_DTD"]) < _d(r["FLX_DIS_DTD"]) for o in matches)
    share = len(negatives) / sum(1 for r in care if r["PRS_NAT_REF"] in PHARMACY)
    assert 0.001 <= share <= 0.01


def test_late_arrivals(delivery: Delivery) -> None:
    delay = np.array([(_d(r["FLX_DIS_DTD"]) - _d(r["EXE_SOI_DTD"])).days for r in delivery.table(CARE_TABLE)])
    assert (delay > 183).sum() > 0, "no claim arriving more than six months late"
    assert (delay <= 183).mean() >= 0.98
    assert np.median(delay) <= 20
    assert delay.max() <= 830
    # So later batches hold care of earlier months.
    assert any(r["EXE_SOI_AMD"] < b[5:] for (b, t), rows in delivery.rows.items() if t == CARE_TABLE for r in rows)


def test_volume_heavy_tail_and_age_shape(delivery: Delivery) -> None:
    ben = delivery.table(BENEFICIARY_TABLE)
    per = Counter(r["BEN_NIR"] for r in delivery.table(CARE_TABLE))
    counts = np.array(sorted((per.get(b["BEN_NIR"], 0) for b in ben), reverse=True))
    per_year = counts.sum() / len(ben) / YEARS
    assert 14 <= per_year <= 26  # about 20 rows per person-year
    assert counts[: len(counts) // 10].sum() / counts.sum() >= 0.40  # top 10 % of people, 40 % of rows
    age = {b["BEN_NIR"]: START - int(b["BEN_NAI_ANN"]) for b in ben}
    mean = {
        band: np.mean([per.get(n, 0) for n, a in age.items() if lo <= a < hi])
        for band, (lo, hi) in {"child": (5, 18), "adult": (25, 50), "old": (75, 110)}.items()
    }
    assert mean["old"] > 2 * mean["adult"] > mean["child"]


def test_seasonality_and_weekdays(delivery: Delivery) -> None:
    # Acute GP consultations of the first (complete) year.
    first_year = [r for r in delivery.table(CARE_TABLE) if r["EXE_SOI_DTD"][:4] == str(START)]
    gp = Counter(int(r["EXE_SOI_DTD"][5:7]) for r in first_year if r["PRS_NAT_REF"] == "1111")
    assert gp[1] + gp[2] + gp[12] > 1.25 * (gp[6] + gp[7] + gp[8])
    days = Counter(_d(r["EXE_SOI_DTD"]).weekday() for r in first_year)
    weekday_mean = sum(days[d] for d in range(5)) / 5
    assert days[6] < 0.02 * weekday_mean  # almost nothing on Sundays
    assert 0.3 * weekday_mean < days[5] < weekday_mean  # Saturdays: pharmacies mostly
    ph_sat = sum(1 for r in first_year if r["PRS_NAT_REF"] in PHARMACY and _d(r["EXE_SOI_DTD"]).weekday() == 5)
    gp_sat = sum(1 for r in first_year if r["PRS_NAT_REF"] == "1111" and _d(r["EXE_SOI_DTD"]).weekday() == 5)
    assert ph_sat > gp_sat


def test_chronic_patients_get_monthly_dispensations(delivery: Delivery) -> None:
    pha = {_key(r): r["PHA_PRS_C13"] for r in delivery.table("ER_PHA_F")}
    chronic = {d["PHA_PRS_C13"] for d in _drugs() if d["CHRONIC"] == "1"}
    days: dict[tuple[str, str], list[date]] = defaultdict(list)
    for r in delivery.table(CARE_TABLE):
        if r["BSE_REM_SGN"] == "1" and pha.get(_key(r)) in chronic:
            days[(r["BEN_NIR"], pha[_key(r)])].append(_d(r["EXE_SOI_DTD"]))
    gaps = [(b - a).days for ds in days.values() for a, b in zip(sorted(ds), sorted(ds)[1:], strict=False)]
    assert np.median(gaps) in range(26, 34)
    ben = delivery.table(BENEFICIARY_TABLE)
    adults = {b["BEN_NIR"] for b in ben if START - int(b["BEN_NAI_ANN"]) >= 18}
    treated = {nir for nir, _ in days} & adults
    assert 0.18 <= len(treated) / len(adults) <= 0.5
    ald = {r["BEN_NIR"] for r in delivery.table(CARE_TABLE) if r["EXO_MTF"] == "42"}
    assert ald and ald <= {nir for nir, _ in days} | ald


def test_plausible_daily_volumes(delivery: Delivery) -> None:
    per_day = Counter(
        (r["PFS_EXE_NUM"], r["EXE_SOI_DTD"]) for r in delivery.table(CARE_TABLE) if r["PRS_NAT_REF"] in ("1111", "1211")
    )
    assert max(per_day.values()) <= 60
    # Patients mostly see providers of their own département.
    rows = [r for r in delivery.table(CARE_TABLE) if r["PRS_NAT_REF"] == "1111"]
    home = sum(r["PFS_EXE_NUM"][:2] == r["BEN_RES_DPT"][1:] or r["BEN_RES_DPT"].startswith("97") for r in rows)
    assert home / len(rows) > 0.9
