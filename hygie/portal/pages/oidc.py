# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Citizens' pages of the identity provider path (hygie.governance.oidc): enrolment through a FranceConnect-style
provider, and the step-up login of a signed-in citizen at the strong level.

- ``GET /citoyen/connexion-fc``: what happens; a button (a CSRF-checked POST) starts the login at the provider.
- ``POST /citoyen/connexion-fc``: opens a flow, sets the binding cookie, sends the browser to the provider.
- ``GET /citoyen/connexion-fc/retour``: the provider's callback (code, state); refused with a French page when the
  state is replayed, foreign or expired, the ID token is not the provider's, or its nonce or level are wrong.
- ``GET``/``POST /citoyen/connexion-fc/compte``: once the provider vouched for exactly one person, they choose a
  username and password; the account opens and they are signed in.
- ``GET``/``POST /citoyen/renforcement``: a signed-in citizen logs in at the provider's strong level (step-up).

The binding cookie is SameSite=Lax (the callback is a top-level navigation from the provider's site; a Strict
cookie would not come with it), HttpOnly, and holds only a random token whose digest the flow row keeps.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from hygie.audit import record
from hygie.governance.accounts import ANONYMOUS, Accounts, Actor
from hygie.governance.acts import act
from hygie.governance.errors import Conflict, Invalid, NotFound
from hygie.governance.oidc import (
    ENROL,
    SIGN_IN,
    STEP_UP,
    OidcRefused,
    OidcUnavailable,
    RelyingParty,
    Started,
    Vouched,
    acr_at_least,
    enabled,
    enrolment_acr,
    step_up_acr,
)
from hygie.governance.policy import Role
from hygie.i18n import N_
from hygie.portal.pages import citizen as citizen_pages
from hygie.portal.pages.messages import fr
from hygie.portal.pages.web import (
    CSP,
    HOME,
    PageRoute,
    checked_form,
    hub_of,
    new_password_errors,
    optional_actor,
    page_actor,
    posted_by,
    redirect,
    render,
    require_role,
    set_session_cookie,
    unavailable,
)

router = APIRouter(prefix="/citoyen", route_class=PageRoute, include_in_schema=False)

BINDING_COOKIE = "hygie_oidc"

START_BUCKET, CALLBACK_BUCKET = "oidc.start.source", "oidc.callback.source"
"""Limiter buckets (hygie.governance.limits) of provider logins started and callbacks taken, per client address."""
REFUSED_FR: dict[str, str] = {
    "flow": fr(
        N_(
            "This sign-in is no longer valid: it was already used, it expired, or it was started in another "
            "browser. Start again from the beginning, in this browser."
        )
    ),
    "provider": fr(
        N_(
            "The identity provider's answer could not be verified: for safety, it is refused. Start again from the "
            "beginning; if it happens again, contact your health insurance fund."
        )
    ),
    "cancelled": fr(
        N_(
            "Signing in at the identity provider did not complete (it may have been cancelled). Start again "
            "whenever you wish."
        )
    ),
    "level": fr(
        N_(
            "The security level of this sign-in is not enough. Start again and choose a means of identification of "
            "the “substantial” level at the identity provider."
        )
    ),
    "no_match": fr(
        N_(
            "We cannot link this identity to an insured person with certainty. Ask for an activation code sent by "
            "post to your address, or contact your health insurance fund."
        )
    ),
    "strong_needed": fr(
        N_(
            "Your identity is in a data leak: opening your account needs a sign-in of the “substantial” level at "
            "the identity provider, or an activation code sent by post to your address. Start again with one of "
            "these."
        )
    ),
    "no_account": fr(
        N_(
            "No active account is open in your name. Create your account with the identity provider or with an "
            "activation code sent by post, or contact your health insurance fund."
        )
    ),
    "other_person": fr(
        N_(
            "The identity provider confirmed the identity of someone other than this account's holder: nothing was "
            "changed."
        )
    ),
}


USERNAME_TAKEN = "the username {username} is taken"
"""The identifier of the service's refusal of a taken username (``hygie.governance.accounts``); any other conflict
is an existing account."""


def _binding(request: Request) -> str:
    return request.cookies.get(BINDING_COOKIE, "")[:100]


def _set_binding(response: Response, request: Request, binding: str, minutes: int) -> None:
    response.set_cookie(BINDING_COOKIE, binding, max_age=minutes * 60, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https", path="/citoyen")  # fmt: skip


def _clear_binding(response: Response) -> None:
    response.delete_cookie(BINDING_COOKIE, path="/citoyen", httponly=True, samesite="lax")


def _form_targets(request: Request) -> dict[str, str]:
    """The page's CSP with the provider's origin allowed as a form target: a form's redirect to another origin is
    held to ``form-action`` (the button posts here, and the answer sends the browser to the provider)."""
    hub = hub_of(request)
    origins = set()
    try:
        with hub.session() as session:
            for url in (
                hub.settings.oidc_issuer or "",
                RelyingParty(hub, session).metadata()["authorization_endpoint"],
            ):
                parts = urlsplit(url)
                origins.add(f"{parts.scheme}://{parts.netloc}")
    except OidcUnavailable:
        pass  # the start will answer "unavailable" itself
    return {
        "Content-Security-Policy": CSP.replace("form-action 'self'", "form-action 'self' " + " ".join(sorted(origins)))
    }


def _offered(request: Request) -> None:
    if not enabled(hub_of(request).settings):
        raise NotFound(N_("sign-in through an identity provider is not offered by this hub"))


def _refused(request: Request, exc: OidcRefused, actor: Actor | None = None) -> HTMLResponse:
    # A person named in a breach may start again at once at the strong level (the same login, asked at eidas2).
    again = {ENROL: "inscription", SIGN_IN: "connexion"}.get(exc.purpose or "") if exc.kind == "strong_needed" else None
    context = {"kind": exc.kind, "message": REFUSED_FR.get(exc.kind, REFUSED_FR["provider"]), "again": again}
    headers = _form_targets(request) if again else None
    response = render(request, "citoyen/connexion-fc-refus.html", context, actor=actor, status=403, headers=headers)
    _clear_binding(response)
    return response


def _limited(request: Request, bucket: str, actor: Actor | None = None) -> HTMLResponse | None:
    """Count this start or callback from the client's address (``oidc_attempts_per_source`` per window, in the
    database), or the 429 page when it spent them. Each start writes a flow and a record and each callback a record:
    a flood from one address (a script, forged states) is stopped before it writes anything, and is not recorded."""
    from hygie.governance import limits
    from hygie.governance.throttle import client_address

    hub = hub_of(request)
    settings = hub.settings
    source = client_address(request.client.host if request.client else None)
    try:
        limits.spend(hub, bucket, source, limit=settings.oidc_attempts_per_source,
                     window_seconds=settings.oidc_attempt_window_minutes * 60)  # fmt: skip
    except limits.Limited as exc:
        context = {"kind": "limited", "message": citizen_pages._wait_fr(exc.retry_after), "again": None}
        response = render(request, "citoyen/connexion-fc-refus.html", context, actor=actor, status=429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    return None


def _start(request: Request, purpose: str, actor: Actor, strong: bool = False) -> Response:
    hub = hub_of(request)
    waiting = _limited(request, START_BUCKET, actor if actor.account_id else None)
    if waiting is not None:
        return waiting
    try:
        with act(hub, actor, "oidc.start") as session:
            rp = RelyingParty(hub, session)
            started: Started = rp.start(purpose, actor=actor.ref, account_id=actor.account_id, strong=strong)
    except OidcUnavailable:
        return unavailable(request, actor if actor.account_id else None)
    response = redirect(started.url)
    _set_binding(response, request, started.binding, hub.settings.oidc_flow_minutes + hub.settings.oidc_enrol_minutes)
    return response


@router.get("/connexion-fc", response_class=HTMLResponse)
def start_page(request: Request) -> Response:
    _offered(request)
    actor = optional_actor(request)
    if actor is not None and actor.role is not None:
        return redirect(HOME[actor.role])
    context = {"acr": hub_of(request).settings.oidc_acr}
    return render(request, "citoyen/connexion-fc.html", context, headers=_form_targets(request))


@router.post("/connexion-fc", response_class=HTMLResponse)
async def start(request: Request) -> Response:
    _offered(request)
    form = await checked_form(request)
    purpose = SIGN_IN if form.get("but") == "connexion" else ENROL
    strong = form.get("niveau") == "substantiel"
    return await run_in_threadpool(_start, request, purpose, ANONYMOUS, strong)


@router.get("/connexion-fc/retour", response_class=HTMLResponse)
def callback(
    request: Request,
    code: str = Query("", max_length=2000),
    state: str = Query("", max_length=200),
    error: str = Query("", max_length=200),
    iss: str = Query("", max_length=500),
) -> Response:
    """The provider's redirect back. Plain ``def``: FastAPI runs it in the thread pool (it calls the provider)."""
    _offered(request)
    hub = hub_of(request)
    actor = optional_actor(request) or ANONYMOUS
    # The device cookie is SameSite=Strict: it does not come with the provider's cross-site redirect, so a provider
    # sign-in names this browser afresh (the new token is set below).
    device = citizen_pages.device_of(request) or citizen_pages.new_device()
    waiting = _limited(request, CALLBACK_BUCKET, actor if actor.account_id else None)
    if waiting is not None:  # unknown states by the thousand would each be a record
        return waiting
    try:
        with act(hub, actor, "oidc.callback") as session:
            rp = RelyingParty(hub, session)
            # RFC 9207: the answer of another provider (mix-up) is refused; a provider that names itself must.
            if iss != rp.issuer and (iss or rp.metadata().get("authorization_response_iss_parameter_supported")):
                raise OidcRefused("provider", "callback from another issuer, or without its iss parameter")
            vouched: Vouched = rp.finish(state=state, code=code, error=error, binding=_binding(request),
                                         actor=actor.ref, device=device)  # fmt: skip
    except OidcRefused as exc:
        return _refused(request, exc, actor if actor.account_id else None)
    except OidcUnavailable:
        return unavailable(request, actor if actor.account_id else None)
    # Not a redirect but a page with a link: the session cookie (SameSite=Strict) is not sent along a redirect
    # chain that began on the provider's site; a click from this page is a same-site navigation.
    if vouched.purpose == STEP_UP:
        response = render(request, "citoyen/connexion-fc-ok.html",
                          {"purpose": "step_up", "next": "/citoyen/renforcement?fait=1"})  # fmt: skip
        _clear_binding(response)
        return response
    if vouched.purpose == SIGN_IN and vouched.session_token is not None:
        response = render(request, "citoyen/connexion-fc-ok.html", {"purpose": "sign_in", "next": HOME[Role.CITIZEN]})
        set_session_cookie(response, request, vouched.session_token, hub.settings.session_minutes * 60)
        citizen_pages.keep_device(response, request, device)
        _clear_binding(response)
        return response
    return redirect("/citoyen/connexion-fc/compte")


def _account_form(request: Request, status: int = 200, **values: Any) -> HTMLResponse:
    minimum = hub_of(request).settings.password_min_length
    context = {"error": None, "field_errors": {}, "username": "", "min_length": minimum, **values}
    return render(request, "citoyen/connexion-fc-compte.html", context, status=status)


def _pending_acr(request: Request) -> str | None:
    hub = hub_of(request)
    with hub.session() as session:
        return enrolment_acr(session, hub.settings, _binding(request))


@router.get("/connexion-fc/compte", response_class=HTMLResponse)
def account_page(request: Request) -> Response:
    _offered(request)
    if _pending_acr(request) is None:
        return _refused(request, OidcRefused("flow", "no vouched enrolment in this browser"))
    return _account_form(request)


@router.post("/connexion-fc/compte", response_class=HTMLResponse)
async def open_account(request: Request) -> Response:
    _offered(request)
    form = await checked_form(request)
    username = str(form.get("username", "")).strip()[:80]
    hub = hub_of(request)
    password, field_errors = new_password_errors(form, hub.settings.password_min_length)
    if not username:
        field_errors["username"] = fr(N_("Choose a username."))
    if field_errors:
        return _account_form(request, 422, field_errors=field_errors, username=username,
                             error=fr(N_("The form is incomplete.")))  # fmt: skip
    binding = _binding(request)
    device = citizen_pages.device_of(request) or citizen_pages.new_device()

    def run() -> tuple[str, int]:
        with act(hub, ANONYMOUS, "citizen.enrol") as session:
            RelyingParty(hub, session).enrol(binding=binding, username=username, password=password, device=device)
        with act(hub, ANONYMOUS, "auth.login") as session:
            accounts = Accounts(session, hub.custody, hub.settings)
            token, _auth, _account = accounts.login(username, password, None, device=device)
        return token, hub.settings.session_minutes * 60

    try:
        token, max_age = await run_in_threadpool(run)
    except OidcRefused as exc:
        return _refused(request, exc)
    except Conflict as exc:
        message = (
            fr(N_("This username is already taken: choose another."))
            if getattr(exc.message, "msgid", "") == USERNAME_TAKEN
            else fr(N_("You already have an account: sign in, or ask your health insurance fund to reset it."))
        )
        return _account_form(request, 409, username=username, error=message)
    except Invalid:
        refused = fr(N_("This username or password is not accepted: choose another."))
        return _account_form(request, 422, username=username, error=refused)
    response = redirect(HOME[Role.CITIZEN])
    set_session_cookie(response, request, token, max_age)
    citizen_pages.keep_device(response, request, device)
    _clear_binding(response)
    return response


@router.get("/renforcement", response_class=HTMLResponse)
def step_up_page(request: Request, fait: int = Query(0, ge=0, le=1)) -> Response:
    _offered(request)
    actor = page_actor(request)
    require_role(actor, Role.CITIZEN)
    hub = hub_of(request)
    assert actor.account_id is not None
    with act(hub, actor, "oidc.step_up.read") as session:
        acr = step_up_acr(session, hub.settings, actor.account_id)
        record(session, actor=actor.ref, role=actor.role_name, action="oidc.step_up.read", detail={"acr": acr})
    strong = acr_at_least(hub.settings, acr, hub.settings.oidc_acr_strong)
    context = {"acr": acr, "strong": strong, "done": bool(fait), "minutes": hub.settings.oidc_step_up_minutes}
    return render(request, "citoyen/renforcement.html", context, actor=actor, headers=_form_targets(request))


@router.post("/renforcement", response_class=HTMLResponse)
async def step_up(request: Request) -> Response:
    _offered(request)
    _form, actor = await posted_by(request, Role.CITIZEN)
    return await run_in_threadpool(_start, request, STEP_UP, actor)
