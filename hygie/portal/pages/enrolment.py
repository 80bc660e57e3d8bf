# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The holder of a new staff account enrols: the one-time code from their mail, a password of their choosing, and
their second factor shown once (Accounts.enrol, the same service as ``POST /accounts/enrol``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from hygie.governance.accounts import ANONYMOUS, Accounts, Enrolled
from hygie.governance.acts import act
from hygie.governance.errors import Denied, Invalid
from hygie.portal.pages.web import PageRoute, checked_form, hub_of, new_password_errors, render

router = APIRouter(route_class=PageRoute, include_in_schema=False)

REFUSED = (
    "Ce code d'activation n'est pas valable : il est peut-être mal recopié, déjà utilisé ou expiré. "
    "Demandez à la personne qui a créé votre compte de vous en envoyer un nouveau."
)


def _form(request: Request, status: int = 200, **values: Any) -> HTMLResponse:
    minimum = hub_of(request).settings.password_min_length
    context = {"error": None, "field_errors": {}, "done": None, "min_length": minimum, **values}
    return render(request, "activation.html", context, status=status)


@router.get("/activation", response_class=HTMLResponse)
def enrolment_page(request: Request) -> Response:
    return _form(request)


@router.post("/activation", response_class=HTMLResponse)
async def enrol(request: Request) -> Response:
    form = await checked_form(request)
    code = str(form.get("code", "")).strip()[:100]
    hub = hub_of(request)
    password, field_errors = new_password_errors(form, hub.settings.password_min_length)
    if not code:
        field_errors["code"] = "Saisissez le code d'activation reçu par courriel."
    if field_errors:
        return _form(request, 422, field_errors=field_errors, error="Le formulaire est incomplet.")

    def run() -> Enrolled:
        with act(hub, ANONYMOUS, "account.enrol") as session:
            return Accounts(session, hub.custody, hub.settings).enrol(code, password)

    try:
        done = await run_in_threadpool(run)
    except Denied:
        return _form(request, 403, error=REFUSED)
    except Invalid:
        return _form(request, 422, error="Ce mot de passe n'est pas accepté : choisissez-en un plus long.")
    return _form(request, done={"username": done.account.username, "uri": done.totp_uri, "secret": done.totp_secret})
