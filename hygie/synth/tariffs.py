# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""How care is coded and paid: prestation natures, exemption codes, tariffs, acts and drug mixes.

Tariffs are 2023-2024 orders of magnitude (consultation 30 EUR, the B letter of lab acts 0.27 EUR, CCAM acts at
their fee schedule); every code is checked against the reference code lists when the model is built.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt

from hygie.synth.codes import ccam_acts, drugs, nabm_coefficients, require
from hygie.synth.conditions import CONDITIONS
from hygie.synth.providers import Kind

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

# Prestation natures (IR_NAT_V.PRS_NAT).
GP_CONSULTATION = 1111
SPECIALIST_CONSULTATION = 1112
PSYCHIATRIST_CONSULTATION = 1113
HOME_VISIT = 1211
IMAGING = 1351
TECHNICAL_ACT = 1352
LAB_TEST = 3211
PHARMACY_BY_RATE = {100: 3311, 30: 3312, 65: 3313}

# Exemption reasons (IR_EXO_V.EXO_MTF).
NOT_EXEMPT = 0
ALD_RELATED = 42
"""A listed long-term illness, care related to it ("maladie liste - affection en rapport")."""
PREVENTION = 81

TARIFF_CENTS = {GP_CONSULTATION: 3000, SPECIALIST_CONSULTATION: 3000, PSYCHIATRIST_CONSULTATION: 5170, HOME_VISIT: 4000}
TARIFF_LOOKUP = np.zeros(max(TARIFF_CENTS) + 1, dtype=np.int64)
TARIFF_LOOKUP[list(TARIFF_CENTS)] = list(TARIFF_CENTS.values())
B_LETTER_CENTS = 27
"""Value of the NABM key letter B: a lab act costs its coefficient times this."""
DOCTOR_RATE, LAB_RATE = 70, 60

CCAM_TARIFF_CENTS = {
    "DEQP003": 1426, "BGQP002": 2829, "GLQP012": 4028, "HEQE002": 9628, "JKHD001": 1246, "ZBQK002": 2128,
    "NFQK001": 1995, "NEQK010": 1995, "LHQK002": 3990, "ZCQK002": 2128, "ACQK001": 2527, "ZBQK001": 2527,
    "ZCQK004": 2527, "ACQN001": 6900, "QEQK004": 6642, "PAQK007": 3996,
}  # fmt: skip
IMAGING_MIX = {
    "ZBQK002": 0.25,
    "NFQK001": 0.15,
    "NEQK010": 0.1,
    "LHQK002": 0.08,
    "ZCQK002": 0.05,
    "ACQK001": 0.08,
    "ZBQK001": 0.07,
    "ZCQK004": 0.05,
    "ACQN001": 0.12,
    "PAQK007": 0.05,
}
SPECIALIST_ACT = {
    Kind.CARDIOLOGY: ("DEQP003", 0.6),
    Kind.OPHTHALMOLOGY: ("BGQP002", 0.3),
    Kind.PNEUMOLOGY: ("GLQP012", 0.5),
    Kind.GASTROENTEROLOGY: ("HEQE002", 0.15),
    Kind.GYNECOLOGY: ("JKHD001", 0.3),
}

# Acute lab panel: (NABM act, probability it is in a prescription); 9105/9005 are the sampling forfaits.
ACUTE_LAB = (
    ("1104", 0.75),
    ("1804", 0.45),
    ("552", 0.35),
    ("593", 0.4),
    ("522", 0.25),
    ("519", 0.2),
    ("996", 0.25),
    ("1208", 0.2),
    ("1213", 0.15),
    ("1610", 0.2),
    ("1124", 0.08),
    ("1139", 0.05),
    ("5201", 0.1),
)
PSA, HCG, BLOOD_FORFAIT, SAMPLING_FORFAIT = "7318", "7402", "9105", "9005"

# Acute prescriptions: weight of each ATC code among drugs given after a consultation (others weigh 1).
ACUTE_DRUG_WEIGHT = {
    "N02BE01": 14.0,
    "M01AE01": 4.0,
    "J01CA04": 5.0,
    "J01CR02": 3.0,
    "J01FA10": 1.5,
    "H02AB06": 2.0,
    "R06AE07": 1.5,
    "R06AX27": 1.5,
    "A07BC05": 1.5,
    "A03AX12": 2.0,
    "N02AJ06": 1.5,
    "N05BA12": 1.2,
    "N05CF02": 1.2,
    "J07BB02": 0.0,
}
FLU_VACCINE_ATC = "J07BB02"


@cache
def ccam_codes() -> tuple[str, ...]:
    """The CCAM acts used, in a fixed order (Lines.item indexes it for CCAM lines)."""
    table = ccam_acts()
    require("IR_CCAM_V63", *CCAM_TARIFF_CENTS)
    codes = tuple(sorted(CCAM_TARIFF_CENTS))
    for c in codes:
        if table[c] not in ("ADI", "ATM"):
            raise LookupError(f"CCAM act {c} is {table[c]}, not imaging (ADI) or a technical act (ATM)")
    return codes


def check_codes() -> None:
    coefficients = nabm_coefficients()
    lab = [c for c, _ in ACUTE_LAB] + [PSA, HCG, BLOOD_FORFAIT, SAMPLING_FORFAIT]
    lab += [c for cond in CONDITIONS for c in cond.monitoring]
    missing = [c for c in lab if c not in coefficients]
    if missing:
        raise LookupError(f"IR_BIO_R lacks NABM acts {missing}")
    require("IR_NAT_V", *TARIFF_CENTS, IMAGING, TECHNICAL_ACT, LAB_TEST, *PHARMACY_BY_RATE.values())
    require("IR_EXO_V", NOT_EXEMPT, ALD_RELATED, PREVENTION)
    ccam_codes()


@cache
def acute_drugs() -> tuple[IntArray, FloatArray]:
    idx = [i for i, d in enumerate(drugs()) if not d.chronic]
    w = np.array([ACUTE_DRUG_WEIGHT.get(drugs()[i].atc, 1.0) for i in idx])
    # Several presentations share an ATC code: split the code's weight between them.
    atc = [drugs()[i].atc for i in idx]
    w = w / np.array([atc.count(a) for a in atc])
    return np.array(idx, dtype=np.int64), np.cumsum(w) / w.sum()


@cache
def drug_arrays() -> tuple[IntArray, IntArray, IntArray]:
    """Per drug: price (cents), statutory rate, prestation nature."""
    price = np.array([d.price_cents for d in drugs()], dtype=np.int64)
    rate = np.array([d.rate for d in drugs()], dtype=np.int64)
    nat = np.array([PHARMACY_BY_RATE[d.rate] for d in drugs()], dtype=np.int64)
    return price, rate, nat
