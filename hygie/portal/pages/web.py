# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""What every page shares: templates, the session cookie, CSRF tokens, security headers and honest errors.

A page session is the API's own session token (from :meth:`Accounts.login`) in an HttpOnly, SameSite=Strict
cookie: script on the page cannot read it, and other sites cannot send it. Every form carries a CSRF token as
well: for a signed-in person it is derived from their session token (a one-way hash, so the page never
exposes the token itself); before sign-in it is a random value also held in a cookie (double submit).

Errors are never rendered as data: a refusal shows what was refused and why; anything else (storage down, a
timeout) shows "indisponible, réessayez" with status 503, never an empty table or a zero.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import structlog
from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from hygie.audit import Outcome, record_now
from hygie.governance.accounts import Accounts, Actor
from hygie.governance.errors import GovernanceError, Unauthenticated
from hygie.governance.policy import Role
from hygie.hub import Hub
from hygie.i18n import N_
from hygie.portal.pages.messages import BY_STATUS, PROJECT_STATUS, ROLE_NAMES, French, Said, fr, said, status_reason
from hygie.portal.refused import mark_refused
from hygie.portal.resilience.faults import dependency_of

log = structlog.get_logger("hygie.portal.pages")

SESSION_COOKIE = "hygie_session"
ANON_CSRF_COOKIE = "hygie_csrf"
CSRF_FIELD = "csrf"
RETRY_AFTER_SECONDS = 30
"""What an unavailable page tells the reader to wait before trying again."""

HOME: dict[Role, str] = {
    Role.CITIZEN: "/citoyen/remboursements",
    Role.RESEARCHER: "/recherche/projets",
    Role.REVIEWER: "/relecture",
    Role.DPO: "/relecture",
    Role.OPERATOR: "/relecture",
    Role.AUDITOR: "/controle/audit",
}
"""Where each role lands after signing in."""

ROLE_LABELS: dict[str, str] = {**ROLE_NAMES, "dpo": fr(N_("data protection officer"))}
"""The roles in French (``hygie.vocabulary``), the DPO's written out where a page names who may enter."""

STATUS_LABELS = PROJECT_STATUS

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; font-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


def _date_fr(value: date | datetime | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%d/%m/%Y %H:%M UTC")
    return value.strftime("%d/%m/%Y")


def _euros(value: Decimal | float | None) -> str:
    if value is None:
        return "—"
    text = f"{Decimal(str(value)):,.2f}".replace(",", "\u202f").replace(".", ",")
    return f"{text}\u00a0€"


templates = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")
# A missing value is an error, never an empty string shown as the truth.
templates.env.undefined = jinja2.StrictUndefined
templates.env.filters["date_fr"] = _date_fr
templates.env.filters["euros"] = _euros
templates.env.filters["json_fr"] = lambda value: json.dumps(value, ensure_ascii=False, sort_keys=True)
templates.env.globals["ROLE_LABELS"] = ROLE_LABELS
templates.env.globals["STATUS_LABELS"] = STATUS_LABELS
templates.env.globals["status_reason"] = status_reason


def hub_of(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


# -- sessions ---------------------------------------------------------------------------------------------


class SignInNeeded(Exception):
    """No session (or an expired one): the reader is sent to the sign-in page, then back."""

    def __init__(self, expired: bool = False) -> None:
        super().__init__("sign in first")
        self.expired = expired


def session_token(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE) or None


def page_actor(request: Request) -> Actor:
    """The signed-in person behind the session cookie. A visit without a cookie goes to the sign-in page
    unrecorded (nothing protected was touched); a refused cookie is an authentication event, recorded."""
    token = session_token(request)
    if token is None:
        raise SignInNeeded()
    hub = hub_of(request)
    with hub.session() as session:
        try:
            actor = Accounts(session, hub.custody, hub.settings).authenticate(token)
        except Unauthenticated as exc:
            record_now(hub.session, actor="anonymous", action="auth.token", outcome=Outcome.DENIED,
                       detail={"reason": exc.message, "via": "page"})  # fmt: skip
            raise SignInNeeded(expired=True) from None
    if actor.via != "session":
        raise SignInNeeded()  # API tokens are for programs, not for the browser's cookie
    return actor


def optional_actor(request: Request) -> Actor | None:
    try:
        return page_actor(request)
    except SignInNeeded:
        return None


def require_role(actor: Actor, *roles: Role) -> None:
    from hygie.governance.errors import Denied

    if actor.role not in roles:
        wanted = ", ".join(ROLE_LABELS[r.value] for r in roles)
        raise Denied(French(fr(N_("this page is for accounts of: {roles}", roles=wanted))))


# -- CSRF -------------------------------------------------------------------------------------------------


def csrf_token(request: Request) -> str:
    """The token forms of this page carry (see the module docstring)."""
    token = session_token(request)
    if token is not None:
        return hashlib.sha256(b"hygie-page-csrf\x00" + token.encode()).hexdigest()
    anon = request.cookies.get(ANON_CSRF_COOKIE)
    if not anon:
        anon = request.state.new_anon_csrf = getattr(request.state, "new_anon_csrf", None) or secrets.token_hex(32)
    return anon


class CsrfRefused(Exception):
    pass


async def checked_form(request: Request) -> dict[str, Any]:
    """The submitted form, once its CSRF token matches; lists for repeated fields (checkboxes)."""
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    expected = csrf_token(request)
    if not isinstance(sent, str) or not hmac.compare_digest(sent, expected):
        raise CsrfRefused()
    out: dict[str, Any] = {}
    for key in form:
        values = [v for v in form.getlist(key) if isinstance(v, str)]
        out[key] = values if len(values) > 1 else (values[0] if values else "")
    return out


async def posted_by(request: Request, *roles: Role) -> tuple[dict[str, Any], Actor]:
    """A submitted form (CSRF checked) and who sent it, refused unless they hold one of ``roles``."""
    form = await checked_form(request)
    actor = await run_in_threadpool(page_actor, request)
    require_role(actor, *roles)
    return form, actor


def new_password_errors(form: dict[str, Any], minimum: int) -> tuple[str, dict[str, str]]:
    """The password a person chooses (fields ``password`` and ``password2``), and what is wrong with it, in French,
    by field (empty when nothing is)."""
    password, again = str(form.get("password", ""))[:200], str(form.get("password2", ""))[:200]
    if len(password) < minimum:
        return password, {"password": fr(N_("Choose a password of at least {count} characters.", count=minimum))}
    if password != again:
        return password, {"password2": fr(N_("The two passwords differ."))}
    return password, {}


def as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    return value if isinstance(value, list) else [value]


# -- rendering --------------------------------------------------------------------------------------------


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    actor: Actor | None = None,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    settings = request.app.state.hub.settings
    brand = {"state_service": settings.portal_state_service, "controller": settings.portal_controller_name}
    values = {"actor": actor, "csrf": csrf_token(request), "path": request.url.path, "brand": brand, **(context or {})}
    response = templates.TemplateResponse(request, name, values, status_code=status, headers=dict(headers or {}))
    return response


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _secure(response: Response, request: Request) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    # Pages show personal data: never kept in a shared cache or the browser's history cache.
    response.headers.setdefault("Cache-Control", "no-store")
    new_anon = getattr(request.state, "new_anon_csrf", None)
    if new_anon and session_token(request) is None:
        response.set_cookie(ANON_CSRF_COOKIE, new_anon, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/")  # fmt: skip
    return response


def set_session_cookie(response: Response, request: Request, token: str, max_age: int) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")  # fmt: skip
    response.delete_cookie(ANON_CSRF_COOKIE, path="/")


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")


def unavailable(request: Request, actor: Actor | None = None) -> HTMLResponse:
    return render(request, "indisponible.html", actor=actor, status=503,
                  headers={"Retry-After": str(RETRY_AFTER_SECONDS)})  # fmt: skip


class PageRoute(APIRoute):
    """A page: refusals and failures become honest HTML answers instead of JSON or a bare 500."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInNeeded as exc:
                target = "/connexion?suite=" + quote(request.url.path, safe="/")
                response = redirect(target + ("&expiree=1" if exc.expired else ""))
                if exc.expired:
                    clear_session_cookie(response)
            except CsrfRefused:
                mark_refused(request.state, "form token missing or wrong (csrf)")  # recorded, rate-limited
                response = render(request, "erreur.html", {"status": 403, "title": fr(N_("Form expired")),
                    "message": Said(fr(N_(
                            "This form expired or does not come from this site. Reload the page and start again."
                        )), "fr")}, status=403)  # fmt: skip
            except RequestValidationError as exc:
                fields = ", ".join(str(e["loc"][-1]) for e in exc.errors())
                invalid = Said(fr(N_("Invalid parameters: {fields}.", fields=fields)), "fr")
                response = render(request, "erreur.html", {"status": 422, "title": _title(422), "message": invalid},
                                  status=422)  # fmt: skip
            except HTTPException as exc:
                response = refusal(
                    request, exc.status_code, exc.detail if isinstance(exc.detail, str) else str(exc.detail), None
                )
            except GovernanceError as exc:
                actor = await run_in_threadpool(optional_actor, request)
                response = refusal(request, exc.status, exc.message, actor)
            except Exception as exc:
                if out_of_range(exc):
                    # An id beyond what the database stores names nothing: not found, never "unavailable" (the
                    # value itself is not echoed), as the API answers it with its 422.
                    response = not_found(request)
                    return _secure(response, request)
                if dependency_of(exc) is not None:
                    # A failing database or warehouse: the resilience middleware answers with its 503 page and
                    # its breaker hears of the failure (a page answering alone would hide it from the breaker).
                    raise
                # Never a partial page: the reader is told the service is unavailable and to try again.
                log.exception("page failed", path=request.url.path)
                response = unavailable(request)
            return _secure(response, request)

        return page


def out_of_range(exc: BaseException) -> bool:
    """A number in the address beyond what the database stores (2^63 on SQLite, 2^31 in PostgreSQL integers)."""
    from sqlalchemy.exc import DataError, StatementError

    if isinstance(exc, StatementError) and isinstance(exc.orig, OverflowError | DataError):
        return True
    return isinstance(exc, OverflowError | DataError)


def not_found(request: Request) -> HTMLResponse:
    """The French page for an address that names nothing (an unknown page, an id out of range)."""
    context = {"status": 404, "title": _title(404), "message": Said(BY_STATUS[404], "fr")}
    page = render(request, "erreur.html", context, status=404)
    _secure(page, request)
    return page


def wants_page(request: Request) -> bool:
    """A browser's navigation (it asks for HTML), not a program calling the API (which reads JSON errors)."""
    return "text/html" in request.headers.get("accept", "")


def refusal(request: Request, status: int, message: str, actor: Actor | None) -> HTMLResponse:
    """A service's refusal as a page: a French title by status, the message in French where it is a known one."""
    context = {"status": status, "title": _title(status), "message": said(status, message)}
    return render(request, "erreur.html", context, actor=actor, status=status)


def _title(status: int) -> str:
    return {
        401: fr(N_("Sign-in needed")),
        403: fr(N_("Access refused")),
        404: fr(N_("Not found")),
        409: fr(N_("Action impossible in the current state")),
        422: fr(N_("Invalid request")),
    }.get(status, fr(N_("Request refused")))


NAV: dict[Role | None, list[tuple[str, str]]] = {
    Role.CITIZEN: [
        ("/citoyen/remboursements", fr(N_("My reimbursements"))),
        ("/citoyen/utilisations", fr(N_("Who used my data"))),
        ("/citoyen/opposition", fr(N_("Object to the use of my data"))),
        ("/citoyen/violations", fr(N_("Data breaches about me"))),
    ],
    Role.RESEARCHER: [
        ("/recherche/projets", fr(N_("My projects"))),
        ("/recherche/projets/nouveau", fr(N_("Request a project"))),
    ],
    Role.REVIEWER: [("/relecture", fr(N_("Projects to review"))), ("/relecture/sas", fr(N_("Output airlock")))],
    Role.OPERATOR: [("/relecture", fr(N_("Projects")))],
    Role.DPO: [  # no airlock: the DPO oversees and checks outputs only if the policy says so (dpo_may_review)
        ("/relecture", fr(N_("Projects to review"))),
        ("/controle/alertes", fr(N_("Alerts"))),
        ("/controle/audit", fr(N_("Audit log"))),
    ],
    Role.AUDITOR: [("/controle/alertes", fr(N_("Alerts"))), ("/controle/audit", fr(N_("Audit log")))],
}
"""The menu per role; pages for features that land later add their entries here (see ``extend_nav``)."""
PUBLIC_NAV = [
    ("/registre", fr(N_("Public register"))),
    ("/journal", fr(N_("Log checkpoint"))),
    ("/verification-fuite", fr(N_("Am I affected by a leak?"))),
]


def extend_nav(role: Role, href: str, label: str) -> None:
    if (href, label) not in NAV.setdefault(role, []):
        NAV[role].append((href, label))


def nav_items(actor: Actor | None) -> list[tuple[str, str]]:
    role = actor.role if actor else None
    return [*NAV.get(role, []), *PUBLIC_NAV]


templates.env.globals["nav_items"] = nav_items
