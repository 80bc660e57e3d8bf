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
from hygie.i18n import N_
from hygie.portal.pages.messages import fr
from hygie.portal.pages.web import PageRoute, checked_form, hub_of, new_password_errors, render

router = APIRouter(route_class=PageRoute, include_in_schema=False)

REFUSED = fr(
    N_(
        "This activation code is not valid: it may be mistyped, already used or expired. Ask the person who "
        "created your account to send you a new one."
    )
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
        field_errors["code"] = fr(N_("Enter the activation code received by e-mail."))
    if field_errors:
        return _form(request, 422, field_errors=field_errors, error=fr(N_("The form is incomplete.")))

    def run() -> Enrolled:
        with act(hub, ANONYMOUS, "account.enrol") as session:
            return Accounts(session, hub.custody, hub.settings).enrol(code, password)

    try:
        done = await run_in_threadpool(run)
    except Denied:
        return _form(request, 403, error=REFUSED)
    except Invalid:
        return _form(request, 422, error=fr(N_("This password is not accepted: choose a longer one.")))
    return _form(request, done={"username": done.account.username, "uri": done.totp_uri, "secret": done.totp_secret})
