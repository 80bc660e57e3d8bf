# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A citizen's own reimbursements: their ER_PRS_F rows, read through their hub pseudonym.

The account holds only the vault's blind index of the NIR; the vault gives the current hub pseudonym, whose
encrypted extracts (written when each batch was accepted) hold the person's rows. Nothing leaves but the person's
own care dates, acts and amounts; the read is recorded (counts only, never the pseudonym). Regularisation rows
(negative quantities and amounts) are shown as they are: they are part of what was paid.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache

from sqlalchemy.orm import Session

from hygie.governance.accounts import Actor
from hygie.governance.citizen_index import CareRow, care_rows, for_person, person_index_of
from hygie.governance.errors import Conflict, Denied
from hygie.governance.policy import REFERENCE_DIR, Role
from hygie.hub import Hub
from hygie.i18n import N_
from hygie.ingest.contract import MISSING_DATE


@dataclass(frozen=True)
class Reimbursement:
    care_date: date | None
    """EXE_SOI_DTD; None where the claim codes it as missing (1600-01-01)."""
    act_code: int | None
    """PRS_NAT_REF (IR_NAT_V)."""
    act_label: str | None
    quantity: Decimal | None
    """PRS_ACT_QTE; negative on a regularisation."""
    amount_paid: Decimal | None
    """PRS_PAI_MNT, euros: the whole expense."""
    amount_reimbursed: Decimal | None
    """BSE_REM_MNT, euros: what the compulsory scheme reimbursed."""


@dataclass(frozen=True)
class ReimbursementPage:
    total: int
    offset: int
    rows: list[Reimbursement]


@cache
def act_labels() -> dict[int, str]:
    """PRS_NAT_REF -> label (IR_NAT_V, upper case as the code list writes it)."""
    path = REFERENCE_DIR / "snds" / "nomenclatures" / "IR_NAT_V.csv"
    with path.open(encoding="utf-8", newline="") as f:
        return {int(r["PRS_NAT"]): r["PRS_NAT_LIB"].strip() for r in csv.DictReader(f, delimiter=";")}


def _care_rows(hub: Hub, session: Session, actor: Actor) -> list[CareRow]:
    if actor.role != Role.CITIZEN or actor.account_id is None:
        raise Denied(N_("only a signed-in citizen reads their reimbursements, for themselves"))
    person_index = person_index_of(session, actor.account_id)
    if person_index is None:
        raise Denied(N_("this account is not tied to an insured person"))
    rows = for_person(hub, session, person_index, lambda p: care_rows(hub, session, p))
    if rows is None:
        raise Conflict(N_("your record could not be found in the identity vault; contact your insurance fund"))
    return rows


def _decimal(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _order(row: CareRow) -> tuple[object, ...]:
    """Newest care first (no date last), then act, amount paid, amount reimbursed, quantity; a missing value sorts
    after the others, as SQL's NULLS LAST would."""
    care, act, quantity, paid, reimbursed = row
    return (
        care is None,
        -care.toordinal() if care is not None else 0,
        *((value is None, value if value is not None else 0) for value in (act, paid, reimbursed, quantity)),
    )


def my_reimbursements(hub: Hub, session: Session, actor: Actor, *, offset: int, limit: int) -> ReimbursementPage:
    """The signed-in citizen's care rows, newest care first, with the total count; recorded before returning.

    Read from the person's encrypted extracts (:mod:`hygie.governance.citizen_index`), not by scanning the
    warehouse. A failure (a missing file, an extract that does not open) raises: the page says "unavailable",
    never "no care".
    """
    found = sorted(_care_rows(hub, session, actor), key=_order)
    total = len(found)
    labels = act_labels()
    rows: list[Reimbursement] = []
    for care, act_code, quantity, paid, reimbursed in found[offset : offset + limit]:
        rows.append(
            Reimbursement(
                care_date=None if care is None or care.isoformat() == MISSING_DATE else care,
                act_code=act_code,
                act_label=labels.get(act_code) if act_code is not None else None,
                quantity=_decimal(quantity),
                amount_paid=_decimal(paid),
                amount_reimbursed=_decimal(reimbursed),
            )
        )
    # Committed (group commit with concurrent reads) before the page is returned.
    hub.record_read(actor=actor.ref, role=actor.role_name, action="citizen.reimbursements",
                    detail={"offset": offset, "rows": len(rows), "total": total})  # fmt: skip
    return ReimbursementPage(total=total, offset=offset, rows=rows)
