# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A citizen's pages: my reimbursements, who used my data, objecting to research use (and withdrawing), the
breach notices that concern me."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from hygie.audit import record
from hygie.breach import citizen as breach_citizen
from hygie.governance.accounts import Actor
from hygie.governance.acts import act
from hygie.governance.citizens import Citizens, OptOutState
from hygie.governance.errors import Invalid
from hygie.governance.letters import EXPOSED_FR
from hygie.governance.policy import Role
from hygie.governance.register import data_uses
from hygie.governance.reimbursements import my_reimbursements
from hygie.i18n import N_, translate
from hygie.portal.pages.messages import fr, french
from hygie.portal.pages.web import (
    PageRoute,
    checked_form,
    extend_nav,
    hub_of,
    new_password_errors,
    page_actor,
    posted_by,
    redirect,
    render,
    require_role,
)
from hygie.portal.routes import breach as breach_api
from hygie.portal.transparency import my_entries

router = APIRouter(prefix="/citoyen", route_class=PageRoute, include_in_schema=False)

REIMBURSEMENTS_PER_PAGE = 25
USES_PER_PAGE = 20


@router.get("/remboursements", response_class=HTMLResponse)
def reimbursements_page(request: Request, page: int = Query(1, ge=1, le=1_000_000)) -> HTMLResponse:
    actor = page_actor(request)
    require_role(actor, Role.CITIZEN)
    hub = hub_of(request)
    with act(hub, actor, "citizen.reimbursements") as session:
        found = my_reimbursements(hub, session, actor, offset=(page - 1) * REIMBURSEMENTS_PER_PAGE,
                                  limit=REIMBURSEMENTS_PER_PAGE)  # fmt: skip
    pages = max(1, -(-found.total // REIMBURSEMENTS_PER_PAGE))
    return render(request, "citoyen/remboursements.html",
                  {"rows": found.rows, "total": found.total, "page": page, "pages": pages}, actor=actor)  # fmt: skip


@router.get("/utilisations", response_class=HTMLResponse)
def data_uses_page(request: Request, page: int = Query(1, ge=1, le=1_000_000)) -> HTMLResponse:
    actor = page_actor(request)
    require_role(actor, Role.CITIZEN)
    hub = hub_of(request)
    with act(hub, actor, "citizen.data_uses") as session:
        total, uses = data_uses(hub, session, actor, offset=(page - 1) * USES_PER_PAGE, limit=USES_PER_PAGE)
    pages = max(1, -(-total // USES_PER_PAGE))
    return render(request, "citoyen/utilisations.html",
                  {"uses": uses, "total": total, "page": page, "pages": pages}, actor=actor)  # fmt: skip


LOG_ENTRIES_PER_PAGE = 20
extend_nav(Role.CITIZEN, "/citoyen/journal", fr(N_("My entries in the audit log")))


@router.get("/journal", response_class=HTMLResponse)
def my_log_page(request: Request, page: int = Query(1, ge=1, le=1_000_000)) -> HTMLResponse:
    """The citizen's own entries of the audit log, with what it takes to check them (GET /me/audit-entries)."""
    actor = page_actor(request)
    require_role(actor, Role.CITIZEN)
    hub = hub_of(request)
    with act(hub, actor, "citizen.audit_entries") as session:
        found = my_entries(hub, session, actor, offset=(page - 1) * LOG_ENTRIES_PER_PAGE, limit=LOG_ENTRIES_PER_PAGE)
        record(session, actor=actor.ref, role=actor.role_name, action="citizen.audit_entries",
               detail={"entries": len(found.entries), "data_uses": len(found.data_uses)})  # fmt: skip
    pages = max(1, -(-found.total // LOG_ENTRIES_PER_PAGE))
    return render(request, "citoyen/journal.html", {"found": found, "page": page, "pages": pages}, actor=actor)


@router.get("/opposition", response_class=HTMLResponse)
def opt_out_page(request: Request, fait: str = Query("", max_length=20)) -> HTMLResponse:
    actor = page_actor(request)
    require_role(actor, Role.CITIZEN)
    hub = hub_of(request)
    with act(hub, actor, "citizen.opt_out.read") as session:
        state = Citizens(hub, session).opt_out_state(actor)
    return render(request, "citoyen/opposition.html", {"state": state, "done": fait}, actor=actor)


@router.post("/opposition", response_class=HTMLResponse)
async def opt_out(request: Request) -> Response:
    form, actor = await posted_by(request, Role.CITIZEN)
    choice = form.get("choix")
    hub = hub_of(request)

    def change() -> OptOutState:
        action = {"opposer": "citizen.opt_out", "retirer": "citizen.opt_out.withdraw"}.get(str(choice))
        with act(hub, actor, action or "citizen.opt_out") as session:
            citizens = Citizens(hub, session)
            if choice == "opposer":
                return citizens.object(actor)
            if choice == "retirer":
                return citizens.withdraw(actor)
            raise Invalid(N_("choose to object (opposer) or to withdraw the objection (retirer)"))

    state = await run_in_threadpool(change)
    return redirect("/citoyen/opposition?fait=" + ("opposition" if state.objecting else "retrait"))


EXPOSED = EXPOSED_FR
"""The breach categories (``hygie.breach.mapping.CATEGORY``) in French; an unknown one is shown as it is."""
WHAT_TO_DO_FR = [translate(item, "fr") or item for item in breach_citizen.WHAT_TO_DO]
"""``hygie.breach.citizen.WHAT_TO_DO`` in French, from the catalogue."""


@router.get("/violations", response_class=HTMLResponse)
def breach_notices_page(request: Request) -> HTMLResponse:
    actor = page_actor(request)
    require_role(actor, Role.CITIZEN)
    found = breach_api.my_notices(hub_of(request), actor)
    what_to_do = WHAT_TO_DO_FR if found.what_to_do else []
    context = {"found": found, "exposed": EXPOSED, "what_to_do": what_to_do}
    return render(request, "citoyen/violations.html", context, actor=actor)


# -- enrolment by post, new-device step-up, contact details (hygie.governance.letters) -------------------

DEVICE_COOKIE = "hygie_device"
"""A random token naming this browser: a breach-flagged citizen signing in from one not seen before needs a postal
code first (``letters.check_sign_in``). HttpOnly, SameSite=Strict; only its digest is stored."""
LETTER_ANSWER_FR = fr(
    N_(
        "If this information matches our records, a letter with an activation code is on its way to the postal "
        "address we know; it arrives within a few days. You can then open your account on the page “Enter my "
        "activation code”."
    )
)
CODE_REFUSED_FR = fr(
    N_(
        "This code is not valid: it may be mistyped, already used or expired, or something entered with it does"
        " not match. Check the letter, or ask for a new one."
    )
)
STEP_UP_FR = fr(
    N_(
        "If your data was in a leak, signing in from a device we do not know yet needs a one-time code, which "
        "we send by post to the address we knew before the leak (one letter at a time; it arrives within a few "
        "days) as soon as you try to sign in from this device. Enter it below with your username and password, "
        "from this same browser. You can also sign in through the identity provider (FranceConnect) at the "
        "substantial security level."
    )
)
DEVICE_REFUSED_FR = fr(
    N_(
        "Sign-in refused: wrong username, password or code, or no code was expected for this device. If you "
        "have not received a letter, first sign in on the page “Sign in”."
    )
)
"""The one answer of the new-device page to every refusal: it never tells whether the password was right, whether
the person is flagged, or whether a code was due."""
LETTER_LIMITED_FR = fr(
    N_(
        "Too many requests were made for this number: wait before making another. If this information matches "
        "our records and no letter is already on its way, a letter is sent all the same to the postal address "
        "we know. This says nothing about any particular person."
    )
)


def _wait_fr(retry_after: int) -> str:
    minutes = max(1, -(-retry_after // 60))
    if minutes == 1:
        return fr(N_("Too many attempts: wait 1 minute before trying again. This says nothing about any particular "
                     "person or account."))  # fmt: skip
    return fr(N_("Too many attempts: wait {minutes} minutes before trying again. This says nothing about any "
                 "particular person or account.", minutes=minutes))  # fmt: skip


def _source(request: Request) -> str:
    from hygie.governance.throttle import client_address

    return client_address(request.client.host if request.client else None)


def device_of(request: Request) -> str | None:
    value = request.cookies.get(DEVICE_COOKIE) or ""
    return value if 20 <= len(value) <= 100 else None


def keep_device(response: Response, request: Request, device: str) -> None:
    days = hub_of(request).settings.citizen_device_cookie_days
    response.set_cookie(DEVICE_COOKIE, device, max_age=days * 86400, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")  # fmt: skip


def new_device() -> str:
    import secrets

    return secrets.token_urlsafe(32)


def _page(request: Request, *, title: str, action: str = "", fields: Sequence[tuple[str, ...]] | None = None,
          status: int = 200, actor: Actor | None = None, **values: Any) -> HTMLResponse:  # fmt: skip
    context: dict[str, Any] = {
        "title": title, "action": action, "fields": fields or [], "legend": "", "submit": fr(N_("Send")), "intro": [],
        "hidden": [], "error": None, "error_title": fr(N_("Request refused")), "notice": None, "notice_title": "",
        "notice_kind": "info", "field_errors": {}, "links": [], **values,
    }  # fmt: skip
    return render(request, "citoyen/formulaire.html", context, actor=actor, status=status)


def _text(form: dict[str, Any], name: str, limit: int = 100) -> str:
    value = form.get(name, "")
    return (value if isinstance(value, str) else "").strip()[:limit]


LETTER_FIELDS = [
    (
        "nir",
        fr(N_("Social security number")),
        "text",
        fr(N_("15 characters, key included, as on your Carte Vitale.")),
        "off",
    ),
    ("nom", fr(N_("Family name")), "text", fr(N_("Name at birth.")), "family-name"),
    ("naissance", fr(N_("Date of birth")), "date", "", "bday"),
]


def _letter_form(request: Request, status: int = 200, **values: Any) -> HTMLResponse:
    typed = values.pop("typed", {})
    fields = [(*f, typed.get(f[0], "")) for f in LETTER_FIELDS]
    intro = [
        fr(
            N_(
                "Give your social security number, your family name and your date of birth. If this information "
                "matches our records, we send you by post, to the postal address we know, a one-time activation "
                "code."
            )
        ),
        fr(
            N_(
                "Knowing this information is not enough to open an account: you must also receive this letter. If "
                "your data was in a leak, the letter goes to the address we knew before the leak."
            )
        ),
    ]
    links = [("/citoyen/activation", fr(N_("I received the letter: enter my activation code")))]
    return _page(request, title=fr(N_("Open my account online")), action="/citoyen/inscription", fields=fields,
                 legend=fr(N_("Your information")), submit=fr(N_("Receive my code by post")), intro=intro, links=links,
                 status=status, **values)  # fmt: skip


@router.get("/inscription", response_class=HTMLResponse)
def letter_page(request: Request) -> HTMLResponse:
    return _letter_form(request)


@router.post("/inscription", response_class=HTMLResponse)
async def ask_letter(request: Request) -> Response:
    from hygie.governance.accounts import ANONYMOUS
    from hygie.governance.citizens import LetterLimited
    from hygie.governance.limits import Limited

    form = await checked_form(request)
    typed = {"nir": _text(form, "nir", 30), "nom": _text(form, "nom"), "naissance": _text(form, "naissance", 10)}
    field_errors = {}
    if not 13 <= len(typed["nir"].replace(" ", "")) <= 15:
        field_errors["nir"] = fr(N_("Enter the 15 characters of your number, key included."))
    if not typed["nom"]:
        field_errors["nom"] = fr(N_("Enter your family name."))
    if len(typed["naissance"]) != 10:
        field_errors["naissance"] = fr(N_("Enter your date of birth."))
    if field_errors:
        return _letter_form(
            request, 422, typed=typed, field_errors=field_errors, error=fr(N_("The form is incomplete."))
        )
    hub = hub_of(request)
    source = _source(request)

    def run() -> None:
        with act(hub, ANONYMOUS, "citizen.letter.request") as session:
            limited = Citizens(hub, session).request_letter(nir=typed["nir"], last_name=typed["nom"],
                                                            birth_date=typed["naissance"], source=source)  # fmt: skip
        if limited is not None:  # after the commit: the request was handled all the same
            raise limited

    try:
        await run_in_threadpool(run)
    except LetterLimited as exc:
        waiting = _letter_form(
            request, 429, error=LETTER_LIMITED_FR, error_title=fr(N_("Request received, but limited"))
        )
        waiting.headers["Retry-After"] = str(exc.retry_after)
        return waiting
    except Limited as exc:
        waiting = _letter_form(request, 429, error=_wait_fr(exc.retry_after), error_title=fr(N_("Request not sent")))
        waiting.headers["Retry-After"] = str(exc.retry_after)
        return waiting
    return _page(
        request,
        title=fr(N_("Open my account online")),
        notice=LETTER_ANSWER_FR,
        notice_title=fr(N_("Request received")),
        links=[("/citoyen/activation", fr(N_("Enter my activation code")))],
    )


ACTIVATION_FIELDS = [
    (
        "code",
        fr(N_("Activation code")),
        "text",
        fr(N_("As printed on the letter, for example ABCD-EFGH-JKMN-PQRS.")),
        "off",
    ),
    ("nir", fr(N_("Social security number")), "text", fr(N_("The one the letter was sent for.")), "off"),
    ("username", fr(N_("Username of your choice")), "text", "", "username"),
    ("password", fr(N_("Password")), "password", "", "new-password"),
    ("password2", fr(N_("Password, a second time")), "password", "", "new-password"),
]


def _activation_form(request: Request, status: int = 200, **values: Any) -> HTMLResponse:
    username = values.pop("username", "")
    minimum = hub_of(request).settings.password_min_length
    fields = [(n, label, kind, fr(N_("At least {count} characters.", count=minimum)) if n == "password" else hint, auto,
               username if n == "username" else "") for n, label, kind, hint, auto in ACTIVATION_FIELDS]  # fmt: skip
    intro = [fr(N_(
            "Enter the activation code received by post and your social security number, then choose your username "
            "and password. The code works only once."
        ))]  # fmt: skip
    links = [("/citoyen/inscription", fr(N_("I have no code: ask for one by post")))]
    return _page(
        request,
        title=fr(N_("Activate my account online")),
        action="/citoyen/activation",
        fields=fields,
        legend=fr(N_("Your code and your account")),
        submit=fr(N_("Open my account")),
        intro=intro,
        links=links,
        status=status,
        **values,
    )


@router.get("/activation", response_class=HTMLResponse)
def activation_page(request: Request) -> HTMLResponse:
    return _activation_form(request)


@router.post("/activation", response_class=HTMLResponse)
async def activate(request: Request) -> Response:
    from hygie.governance.accounts import ANONYMOUS, NewAccount
    from hygie.governance.errors import Conflict, Denied
    from hygie.governance.limits import Limited

    form = await checked_form(request)
    code, nir, username = _text(form, "code", 40), _text(form, "nir", 30), _text(form, "username", 80)
    hub = hub_of(request)
    password, field_errors = new_password_errors(form, hub.settings.password_min_length)
    if not code:
        field_errors["code"] = fr(N_("Enter the activation code received by post."))
    if not nir:
        field_errors["nir"] = fr(N_("Enter your social security number."))
    if not username:
        field_errors["username"] = fr(N_("Choose a username."))
    if field_errors:
        return _activation_form(
            request,
            422,
            username=username,
            field_errors=field_errors,
            error=fr(N_("The form is incomplete.")),
            error_title=fr(N_("Account not opened")),
        )
    source = _source(request)
    device = device_of(request) or new_device()

    def run() -> NewAccount:
        with act(hub, ANONYMOUS, "citizen.enrol") as session:
            return Citizens(hub, session).activate(code=code, nir=nir, username=username, password=password,
                                                   source=source, device=device)  # fmt: skip

    try:
        created = await run_in_threadpool(run)
    except Limited as exc:
        waiting = _activation_form(request, 429, username=username, error=_wait_fr(exc.retry_after),
                                   error_title=fr(N_("Account not opened")))  # fmt: skip
        waiting.headers["Retry-After"] = str(exc.retry_after)
        return waiting
    except Denied:
        return _activation_form(
            request, 403, username=username, error=CODE_REFUSED_FR, error_title=fr(N_("Code refused"))
        )
    except Conflict:
        return _activation_form(request, 409, username=username, error_title=fr(N_("Account not opened")),
                                error=fr(N_("You may already have an account, or this username is already taken: "
                                            "choose another, or sign in.")))  # fmt: skip
    opened = N_("Your account “{username}” is open. Sign in with your username and password.",
                username=created.account.username)  # fmt: skip
    done = _page(request, title=fr(N_("Activate my account online")), notice_kind="success",
                 notice_title=fr(N_("Account opened")), notice=fr(opened),
                 links=[("/connexion", fr(N_("Sign in")))])  # fmt: skip
    keep_device(done, request, device)
    return done


DEVICE_FIELDS = [
    ("username", fr(N_("Username")), "text", "", "username"),
    ("password", fr(N_("Password")), "password", "", "current-password"),
    ("code", fr(N_("Code received by post")), "text", fr(N_("For example ABCD-EFGH-JKMN-PQRS.")), "off"),
]


def step_up_form(request: Request, status: int = 200, **values: Any) -> HTMLResponse:
    """The new-device step-up page (also what ``/connexion`` shows when a flagged citizen's sign-in needs it)."""
    username = values.pop("username", "")
    device = values.pop("device", None) or device_of(request)
    fields = [(*f, username if f[0] == "username" else "") for f in DEVICE_FIELDS]
    from hygie.governance.oidc import enabled

    links = [("/citoyen/connexion-fc", fr(N_("Sign me in through the identity provider (FranceConnect)")))]
    response = _page(
        request,
        title=fr(N_("Confirm this new device")),
        action="/citoyen/appareil",
        fields=fields,
        legend=fr(N_("Your credentials and the code received by post")),
        submit=fr(N_("Confirm and sign me in")),
        intro=[STEP_UP_FR],
        status=status,
        links=links if enabled(hub_of(request).settings) else [],
        **values,
    )
    keep_device(response, request, device or new_device())
    return response


@router.get("/appareil", response_class=HTMLResponse)
def device_page(request: Request) -> HTMLResponse:
    return step_up_form(request)


@router.post("/appareil", response_class=HTMLResponse)
async def confirm_device(request: Request) -> Response:
    """A breach-flagged citizen's new device, confirmed with the postal code: a password sign-in, so it goes
    through the sign-in throttle, and it opens a session only for a flagged account on a device not yet trusted with
    a valid code (``citizens.sign_in(step_up_only=True)``). Every refusal is the one ``DEVICE_REFUSED_FR`` (401)."""
    from hygie.governance.citizens import sign_in
    from hygie.governance.errors import Unauthenticated
    from hygie.governance.throttle import SignInThrottle, Throttled, wait_message
    from hygie.portal.pages.web import HOME, set_session_cookie

    form = await checked_form(request)
    username, code = _text(form, "username", 80), _text(form, "code", 40)
    password = str(form.get("password", ""))[:200]
    if not username or not password or not code:
        return step_up_form(
            request,
            422,
            username=username,
            error=fr(N_("Enter your username, your password and the code received by post.")),
            error_title=fr(N_("Form incomplete")),
        )
    hub = hub_of(request)
    throttle: SignInThrottle = request.app.state.signin_throttle
    device = device_of(request) or new_device()
    source = _source(request)

    def login() -> tuple[str, int, Role]:
        token, _auth, account = sign_in(hub, username=username, password=password, totp=None, device=device,
                                        source=source, step_up_code=code, step_up_only=True)  # fmt: skip
        return token, hub.settings.session_minutes * 60, Role(account.role)

    try:
        token, max_age, role = await run_in_threadpool(throttle.guarded, hub, source, username, login)
    except Throttled as exc:
        waiting = step_up_form(request, 429, username=username, device=device, error=fr(wait_message(exc.retry_after)),
                               error_title=fr(N_("Sign-in refused")))  # fmt: skip
        waiting.headers["Retry-After"] = str(exc.retry_after)
        return waiting
    except Unauthenticated:
        return step_up_form(request, 401, username=username, device=device, error=DEVICE_REFUSED_FR,
                            error_title=fr(N_("Sign-in refused")))  # fmt: skip
    response = redirect(HOME[role])
    set_session_cookie(response, request, token, max_age)
    keep_device(response, request, device)
    return response


extend_nav(Role.CITIZEN, "/citoyen/coordonnees", fr(N_("My contact details for notices")))
CONTACT_FIELDS = [
    ("email", fr(N_("E-mail address")), "email", fr(N_("Where we warn you (breach notices, for example).")), "email"),
    ("phone", fr(N_("Telephone")), "tel", "", "tel"),
]


def _contact_form(request: Request, actor: Actor, flagged: bool, values: dict[str, str | None],
                  status: int = 200, **extra: Any) -> HTMLResponse:  # fmt: skip
    fields = [(*f, values.get(f[0]) or "") for f in CONTACT_FIELDS]
    intro = [fr(N_("These details are used to warn you; they are kept encrypted."))]
    if flagged:
        fields.append(
            ("code", fr(N_("Code received by post")), "text", fr(N_("Leave empty to receive a code.")), "off", "")
        )
        intro.append(
            fr(
                N_(
                    "Your data was in a leak: changing these details needs a one-time code sent by post to the "
                    "address we knew before the leak. Send the form without a code to receive it (it arrives within"
                    " a few days), then come back with it. You can also go through the identity provider "
                    "(FranceConnect) at the substantial security level."
                )
            )
        )
    return _page(request, title=fr(N_("My contact details for notices")), action="/citoyen/coordonnees", fields=fields,
                 legend=fr(N_("Your contact details")), submit=fr(N_("Save")), intro=intro, actor=actor, status=status,
                 **extra)  # fmt: skip


@router.get("/coordonnees", response_class=HTMLResponse)
def contact_page(request: Request) -> HTMLResponse:
    from hygie.governance import letters

    actor = page_actor(request)
    require_role(actor, Role.CITIZEN)
    hub = hub_of(request)
    with act(hub, actor, "citizen.contact_details.read") as session:
        citizens = Citizens(hub, session)
        values = citizens.contact(actor)
        flagged = letters.flagged(session, citizens._person_index(actor))
    return _contact_form(request, actor, flagged, values)


@router.post("/coordonnees", response_class=HTMLResponse)
async def change_contact(request: Request) -> Response:
    from hygie.governance import letters
    from hygie.governance.citizens import ContactChange
    from hygie.governance.errors import Denied
    from hygie.governance.limits import Limited

    form, actor = await posted_by(request, Role.CITIZEN)
    values: dict[str, str | None] = {"email": _text(form, "email", 200), "phone": _text(form, "phone", 40)}
    code = _text(form, "code", 40) or None
    hub = hub_of(request)
    source = _source(request)

    def run() -> tuple[ContactChange, bool]:
        with act(hub, actor, "citizen.contact_details") as session:
            citizens = Citizens(hub, session)
            flagged = letters.flagged(session, citizens._person_index(actor))
            done = citizens.change_contact(actor, email=values["email"], phone=values["phone"], code=code,
                                           source=source)  # fmt: skip
            return done, flagged

    try:
        done, flagged = await run_in_threadpool(run)
    except Limited as exc:
        return _contact_form(request, actor, True, values, 429, error=_wait_fr(exc.retry_after))
    except Denied:
        return _contact_form(
            request, actor, True, values, 403, error=CODE_REFUSED_FR, error_title=fr(N_("Code refused"))
        )
    except Invalid as exc:
        return _contact_form(
            request,
            actor,
            False,
            values,
            422,
            error_title=fr(N_("Contact details not saved")),
            error=french(422, exc.message),
        )  # the service's own check, from the catalogue
    if done.changed:
        return _contact_form(request, actor, False, values, notice_kind="success", notice_title=fr(N_("Saved")),
                             notice=fr(N_("Your contact details are saved.")))  # fmt: skip
    notice = (fr(N_(
            "A one-time code is on its way by post to the address we knew before the leak (one letter at a time). "
            "Come back with this code to confirm the change."
        ))) if done.letter else (
              fr(N_(
                      "We have no postal address to send you a code: contact your health insurance fund."
                  )))  # fmt: skip
    return _contact_form(request, actor, flagged, values, notice_title=fr(N_("Code sent by post")), notice=notice)
