# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""From care to deliveries: when each claim reaches the system, corrections, and the nine DCIR keys.

A claim enters the information system (FLX_TRT_DTD) after a delay: days for most electronic claims, weeks or
months for paper and rejected-then-resent ones, up to 27 months for a thin tail. It is made available
(FLX_DIS_DTD, the flow) a few days later, and delivered in the batch of that month; claims whose flow would
fall after the cut-off are not in the extract. A few pharmacy lines are later cancelled by a correcting claim
with negative quantity and amounts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hygie.synth.claims import Detail, Lines
from hygie.synth.dates import Period

IntArray = npt.NDArray[np.int64]

POSITIVE, NEGATIVE = 1, 2
"""IR_SGN_V codes of BSE_REM_SGN."""

FAST_SHARE = 0.87
"""Claims in within days (electronic claims)."""
TAIL_SHARE = 0.008
"""Claims arriving more than six months after care."""
MAX_DELAY = 820
"""About 27 months."""
REGULARISATION_SHARE = 0.005
DCT_SPACE = 99_999_999
"""DCT_ORD_NUM stays within 8 digits (its length in ER_BIO_F/ER_CAM_F); FLX_EMT_ORD counts the wrap-arounds."""


@dataclass(frozen=True)
class Delivered:
    """Claim lines as delivered, sorted by flow date then décompte and line."""

    lines: Lines
    treated: IntArray
    """FLX_TRT_DTD."""
    flow: IntArray
    """FLX_DIS_DTD."""
    sign: IntArray
    decompte: IntArray
    """Décompte sequence over the whole run (0-based): DCT_ORD_NUM and FLX_EMT_ORD derive from it."""
    order: IntArray
    """PRS_ORD_NUM (1-based within the décompte)."""


def _delays(rng: np.random.Generator, n: int) -> IntArray:
    u = rng.random(n)
    fast = np.minimum(np.round(rng.lognormal(np.log(4.0), 0.9, size=n)), 60)
    slow = np.minimum(15 + np.round(rng.exponential(35.0, size=n)), 180)
    tail = rng.integers(181, MAX_DELAY + 1, size=n)
    return np.select([u < FAST_SHARE, u < 1.0 - TAIL_SHARE], [fast, slow], tail).astype(np.int64)


class FlowRouter:
    """Assigns flows and décompte numbers; keeps the décompte counter across chunks."""

    def __init__(self, period: Period) -> None:
        self.period = period
        self.next_decompte = 0

    def route(self, rng: np.random.Generator, lines: Lines) -> Delivered:
        cutoff = self.period.cutoff
        n_claims = int(lines.claim.max()) + 1 if lines.size else 0
        claim_day = np.zeros(n_claims, dtype=np.int64)
        claim_day[lines.claim] = lines.day
        treated_c = claim_day + _delays(rng, n_claims)
        flow_c = treated_c + rng.integers(1, 8, size=n_claims)
        treated, flow = treated_c[lines.claim], flow_c[lines.claim]
        sign = np.full(lines.size, POSITIVE, dtype=np.int64)

        # Corrections: a later décompte cancelling one delivered pharmacy line.
        pick = np.flatnonzero(
            (lines.detail == Detail.PHARMACY) & (flow <= cutoff) & (rng.random(lines.size) < REGULARISATION_SHARE)
        )
        fix = lines.take(pick)
        fix.claim = n_claims + np.arange(pick.size, dtype=np.int64)
        fix_treated = flow[pick] + rng.integers(10, 121, size=pick.size)
        fix_flow = fix_treated + rng.integers(1, 8, size=pick.size)

        all_lines = Lines.concat([lines, fix])
        treated = np.concatenate([treated, fix_treated])
        flow = np.concatenate([flow, fix_flow])
        sign = np.concatenate([sign, np.full(pick.size, NEGATIVE, dtype=np.int64)])

        keep = np.flatnonzero(flow <= cutoff)
        # Stable sort: lines of a claim keep their order.
        order = keep[np.lexsort((all_lines.claim[keep], flow[keep]))]
        all_lines = all_lines.take(order)
        treated, flow, sign = treated[order], flow[order], sign[order]

        new_claim = np.ones(all_lines.size, dtype=bool)
        new_claim[1:] = all_lines.claim[1:] != all_lines.claim[:-1]
        claim_rank = np.cumsum(new_claim) - 1
        starts = np.flatnonzero(new_claim)
        line_order = np.arange(all_lines.size, dtype=np.int64) - starts[claim_rank] + 1
        decompte = self.next_decompte + claim_rank
        self.next_decompte += int(new_claim.sum())
        return Delivered(all_lines, treated, flow, sign, decompte.astype(np.int64), line_order)
