# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Public pages (no sign-in): home, the project register and the latest signed checkpoint of the audit log."""

from __future__ import annotations

import base64

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from hygie.audit import witnessing
from hygie.audit.log import TransparencyLog
from hygie.governance.register import register
from hygie.portal.pages.citizen import WHAT_TO_DO_FR
from hygie.portal.pages.web import PageRoute, hub_of, optional_actor, render

router = APIRouter(route_class=PageRoute, include_in_schema=False)

REGISTER_PER_PAGE = 50
JOURNAL_ENTRIES = 20
"""Latest entries of the log shown on /journal, in their public form."""


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> HTMLResponse:
    return render(request, "accueil.html", actor=optional_actor(request))


@router.get("/registre", response_class=HTMLResponse)
def register_page(request: Request, page: int = Query(1, ge=1, le=1_000_000)) -> HTMLResponse:
    """Public information: not recorded, like GET /register (recording it would let anyone grow the log)."""
    hub = hub_of(request)
    with hub.session() as session:
        total, entries = register(session, offset=(page - 1) * REGISTER_PER_PAGE, limit=REGISTER_PER_PAGE)
    pages = max(1, -(-total // REGISTER_PER_PAGE))
    return render(request, "registre.html", {"entries": entries, "total": total, "page": page, "pages": pages},
                  actor=optional_actor(request))  # fmt: skip


@router.get("/journal", response_class=HTMLResponse)
def checkpoint_page(request: Request) -> HTMLResponse:
    """The latest signed checkpoint, as GET /audit/checkpoint serves it (a public read, not recorded)."""
    hub = hub_of(request)
    log = TransparencyLog.for_hub(hub)
    checkpoint = log.checkpoint()
    witnessed = witnessing.witnessed(log, hub.settings)
    # The latest entries in their public form (GET /audit/entries): acts of the register in clear, others sealed.
    latest = log.entries(max(0, checkpoint.size - JOURNAL_ENTRIES), checkpoint.size)[::-1]
    return render(
        request,
        "journal.html",
        {
            "size": checkpoint.size,
            "root": base64.b64encode(checkpoint.root).decode("ascii"),
            "note": checkpoint.cosigned_note,
            "issued_at": checkpoint.issued_at,
            "verifier_key": log.verifier_key,
            "latest": latest,
            "witnesses": len(hub.settings.audit_witnesses),
            "quorum": hub.settings.audit_witness_quorum,
            "cosigned": None
            if witnessed is None
            else {"size": witnessed[0].size, "note": witnessed[0].cosigned_note, "names": witnessed[1]},
        },
        actor=optional_actor(request),
    )


@router.get("/verification-fuite", response_class=HTMLResponse)
def breach_check_page(request: Request) -> HTMLResponse:
    """The anonymous "am I in it?" check. The page is static: the NIR is blinded in the browser
    (static/breach-check.js) and only reaches the server as the public API's blinded element."""
    return render(request, "verification-fuite.html", {"what_to_do": WHAT_TO_DO_FR}, actor=optional_actor(request))
