# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Signing in and out of the pages: the API's own sign-in (Accounts.login), its token kept in a cookie."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from hygie.governance.accounts import Accounts
from hygie.governance.acts import act
from hygie.governance.errors import Unauthenticated
from hygie.governance.policy import Role
from hygie.governance.throttle import SignInThrottle, Throttled, client_address, wait_message
from hygie.i18n import N_
from hygie.portal.pages import citizen as citizen_pages
from hygie.portal.pages.messages import fr
from hygie.portal.pages.web import (
    HOME,
    PageRoute,
    checked_form,
    clear_session_cookie,
    hub_of,
    optional_actor,
    redirect,
    render,
    session_token,
    set_session_cookie,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)

REFUSED_FR = fr(N_("Wrong username, password or code."))
"""The one answer to every refused sign-in (a code already used once is refused too: wait for the next one)."""


def _safe_next(suite: str) -> str | None:
    # Only a path on this site: never an open redirect to another host.
    if suite.startswith("/") and not suite.startswith("//") and "\\" not in suite:
        return suite
    return None


def _form(request: Request, status: int = 200, **values: Any) -> HTMLResponse:
    context = {"error": None, "field_errors": {}, "username": "", "suite": "", "expired": False, **values}
    return render(request, "connexion.html", context, status=status)


@router.get("/connexion", response_class=HTMLResponse)
def signin_page(
    request: Request, suite: str = Query("", max_length=300), expiree: int = Query(0, ge=0, le=1)
) -> Response:
    actor = optional_actor(request)
    if actor is not None and actor.role is not None:
        return redirect(_safe_next(suite) or HOME[actor.role])
    return _form(request, suite=suite, expired=bool(expiree))


@router.post("/connexion", response_class=HTMLResponse)
async def signin(request: Request) -> Response:
    form = await checked_form(request)
    username = str(form.get("username", "")).strip()[:80]
    password = str(form.get("password", ""))[:200]
    totp = str(form.get("totp", "")).strip()[:10] or None
    suite = str(form.get("suite", ""))[:300]
    field_errors = {}
    if not username:
        field_errors["username"] = fr(N_("Enter your username."))
    if not password:
        field_errors["password"] = fr(N_("Enter your password."))
    if field_errors:
        return _form(request, 422, field_errors=field_errors, username=username, suite=suite,
                     error=fr(N_("Required fields are empty.")))  # fmt: skip
    hub = hub_of(request)
    throttle: SignInThrottle = request.app.state.signin_throttle
    device = citizen_pages.device_of(request) or citizen_pages.new_device()  # a breach-flagged citizen's step-up
    source = client_address(request.client.host if request.client else None)

    def login() -> tuple[str, int, Role]:
        from hygie.governance.citizens import sign_in

        token, _auth, account = sign_in(hub, username=username, password=password, totp=totp, device=device,
                                        source=source)  # fmt: skip
        return token, hub.settings.session_minutes * 60, Role(account.role)

    try:
        token, max_age, role = await run_in_threadpool(throttle.guarded, hub, source, username, login)
    except Throttled as exc:
        # The same wait and words whether or not the username exists (the throttle never looks it up).
        waiting = _form(request, 429, error=fr(wait_message(exc.retry_after)), username=username, suite=suite)
        waiting.headers["Retry-After"] = str(exc.retry_after)
        return waiting
    except Unauthenticated:
        # One answer to every refusal (citizens.sign_in), a breach-flagged citizen's new device included (its code
        # goes by post): it never tells which part was wrong, nor whether a person is flagged. The device cookie is
        # kept on every refusal alike, so the code can be typed from this browser at /citoyen/appareil.
        refused = _form(request, 401, error=REFUSED_FR, username=username, suite=suite)
        citizen_pages.keep_device(refused, request, device)
        return refused
    response = redirect(_safe_next(suite) or HOME[role])
    set_session_cookie(response, request, token, max_age)
    citizen_pages.keep_device(response, request, device)
    return response


@router.post("/deconnexion", response_class=HTMLResponse)
async def signout(request: Request) -> Response:
    await checked_form(request)
    token = session_token(request)
    actor = await run_in_threadpool(optional_actor, request)
    if token is not None and actor is not None:
        hub = hub_of(request)

        def logout() -> None:
            with act(hub, actor, "auth.logout") as session:
                Accounts(session, hub.custody, hub.settings).logout(token)

        await run_in_threadpool(logout)
    response = redirect("/connexion")
    clear_session_cookie(response)
    return response
