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
extend_nav(Role.CITIZEN, "/citoyen/journal", "Mes traces dans le journal d'audit")


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
LETTER_ANSWER_FR = (
    "Si ces informations correspondent à notre dossier, un courrier avec un code d'activation part vers l'adresse "
    "postale que nous connaissons ; il arrive sous quelques jours. Vous pourrez alors ouvrir votre compte sur la page "
    "« Saisir mon code d'activation »."
)
CODE_REFUSED_FR = (
    "Ce code n'est pas valable : il est peut-être mal recopié, déjà utilisé ou expiré, ou une information saisie avec "
    "lui ne correspond pas. Vérifiez le courrier, ou demandez-en un nouveau."
)
STEP_UP_FR = (
    "Si vos données figuraient dans une fuite, vous connecter depuis un appareil que nous ne connaissons pas encore "
    "demande un code à usage unique, que nous envoyons par courrier à l'adresse que nous connaissions avant la fuite "
    "(un seul courrier à la fois ; il arrive sous quelques jours) dès que vous essayez de vous connecter depuis cet "
    "appareil. Saisissez-le ci-dessous avec votre identifiant et votre mot de passe, depuis ce même navigateur. Vous "
    "pouvez aussi vous connecter par le fournisseur d'identité (FranceConnect) au niveau de sécurité renforcé."
)
DEVICE_REFUSED_FR = (
    "Connexion refusée : identifiant, mot de passe ou code incorrect, ou aucun code n'était attendu pour cet "
    "appareil. Si vous n'avez pas reçu de courrier, connectez-vous d'abord sur la page « Se connecter »."
)
"""The one answer of the new-device page to every refusal: it never tells whether the password was right, whether
the person is flagged, or whether a code was due."""
LETTER_LIMITED_FR = (
    "Trop de demandes ont été faites pour ce numéro : patientez avant d'en faire une autre. Si ces informations "
    "correspondent à notre dossier et qu'aucun courrier n'est déjà en route, un courrier part tout de même vers "
    "l'adresse postale que nous connaissons. Cela ne dit rien d'une personne en particulier."
)


def _wait_fr(retry_after: int) -> str:
    minutes = max(1, -(-retry_after // 60))
    return (
        f"Trop de tentatives : patientez {minutes} minute{'s' if minutes > 1 else ''} avant de réessayer. "
        "Cela ne dit rien d'une personne ni d'un compte en particulier."
    )


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
        "title": title, "action": action, "fields": fields or [], "legend": "", "submit": "Envoyer", "intro": [],
        "hidden": [], "error": None, "error_title": "Demande refusée", "notice": None, "notice_title": "",
        "notice_kind": "info", "field_errors": {}, "links": [], **values,
    }  # fmt: skip
    return render(request, "citoyen/formulaire.html", context, actor=actor, status=status)


def _text(form: dict[str, Any], name: str, limit: int = 100) -> str:
    value = form.get(name, "")
    return (value if isinstance(value, str) else "").strip()[:limit]


LETTER_FIELDS = [
    ("nir", "Numéro de sécurité sociale", "text", "15 caractères, clé comprise, comme sur votre carte Vitale.", "off"),
    ("nom", "Nom de famille", "text", "Nom de naissance.", "family-name"),
    ("naissance", "Date de naissance", "date", "", "bday"),
]


def _letter_form(request: Request, status: int = 200, **values: Any) -> HTMLResponse:
    typed = values.pop("typed", {})
    fields = [(*f, typed.get(f[0], "")) for f in LETTER_FIELDS]
    intro = [
        "Indiquez votre numéro de sécurité sociale, votre nom de famille et votre date de naissance. Si ces "
        "informations correspondent à notre dossier, nous vous envoyons par courrier, à l'adresse postale que nous "
        "connaissons, un code d'activation à usage unique.",
        "Connaître ces informations ne suffit pas pour ouvrir un compte : il faut aussi recevoir ce courrier. Si "
        "vos données figuraient dans une fuite, le courrier part vers l'adresse que nous connaissions avant la fuite.",
    ]
    links = [("/citoyen/activation", "J'ai reçu le courrier : saisir mon code d'activation")]
    return _page(request, title="Ouvrir mon compte en ligne", action="/citoyen/inscription", fields=fields,
                 legend="Vos informations", submit="Recevoir mon code par courrier", intro=intro, links=links,
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
        field_errors["nir"] = "Saisissez les 15 caractères de votre numéro, clé comprise."
    if not typed["nom"]:
        field_errors["nom"] = "Saisissez votre nom de famille."
    if len(typed["naissance"]) != 10:
        field_errors["naissance"] = "Saisissez votre date de naissance."
    if field_errors:
        return _letter_form(request, 422, typed=typed, field_errors=field_errors, error="Le formulaire est incomplet.")
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
        waiting = _letter_form(request, 429, error=LETTER_LIMITED_FR, error_title="Demande reçue, mais limitée")
        waiting.headers["Retry-After"] = str(exc.retry_after)
        return waiting
    except Limited as exc:
        waiting = _letter_form(request, 429, error=_wait_fr(exc.retry_after), error_title="Demande non envoyée")
        waiting.headers["Retry-After"] = str(exc.retry_after)
        return waiting
    return _page(request, title="Ouvrir mon compte en ligne", notice=LETTER_ANSWER_FR, notice_title="Demande reçue",
                 links=[("/citoyen/activation", "Saisir mon code d'activation")])  # fmt: skip


ACTIVATION_FIELDS = [
    ("code", "Code d'activation", "text", "Tel qu'il figure sur le courrier, par exemple ABCD-EFGH-JKMN-PQRS.", "off"),
    ("nir", "Numéro de sécurité sociale", "text", "Celui pour lequel le courrier a été envoyé.", "off"),
    ("username", "Identifiant de votre choix", "text", "", "username"),
    ("password", "Mot de passe", "password", "", "new-password"),
    ("password2", "Mot de passe, une seconde fois", "password", "", "new-password"),
]


def _activation_form(request: Request, status: int = 200, **values: Any) -> HTMLResponse:
    username = values.pop("username", "")
    minimum = hub_of(request).settings.password_min_length
    fields = [(n, label, kind, f"Au moins {minimum} caractères." if n == "password" else hint, auto,
               username if n == "username" else "") for n, label, kind, hint, auto in ACTIVATION_FIELDS]  # fmt: skip
    intro = ["Saisissez le code d'activation reçu par courrier et votre numéro de sécurité sociale, puis choisissez "
             "votre identifiant et votre mot de passe. Le code ne sert qu'une fois."]  # fmt: skip
    links = [("/citoyen/inscription", "Je n'ai pas de code : le demander par courrier")]
    return _page(request, title="Activer mon compte en ligne", action="/citoyen/activation", fields=fields,
                 legend="Votre code et votre compte", submit="Ouvrir mon compte", intro=intro, links=links,
                 status=status, **values)  # fmt: skip


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
        field_errors["code"] = "Saisissez le code d'activation reçu par courrier."
    if not nir:
        field_errors["nir"] = "Saisissez votre numéro de sécurité sociale."
    if not username:
        field_errors["username"] = "Choisissez un identifiant."
    if field_errors:
        return _activation_form(request, 422, username=username, field_errors=field_errors,
                                error="Le formulaire est incomplet.", error_title="Compte non ouvert")  # fmt: skip
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
                                   error_title="Compte non ouvert")  # fmt: skip
        waiting.headers["Retry-After"] = str(exc.retry_after)
        return waiting
    except Denied:
        return _activation_form(request, 403, username=username, error=CODE_REFUSED_FR, error_title="Code refusé")
    except Conflict:
        return _activation_form(request, 409, username=username, error_title="Compte non ouvert",
                                error="Vous avez peut-être déjà un compte, ou cet identifiant est déjà pris : "
                                "choisissez-en un autre, ou connectez-vous.")  # fmt: skip
    done = _page(request, title="Activer mon compte en ligne", notice_kind="success", notice_title="Compte ouvert",
                 notice=f"Votre compte « {created.account.username} » est ouvert. Connectez-vous avec votre "
                 "identifiant et votre mot de passe.", links=[("/connexion", "Se connecter")])  # fmt: skip
    keep_device(done, request, device)
    return done


DEVICE_FIELDS = [
    ("username", "Identifiant", "text", "", "username"),
    ("password", "Mot de passe", "password", "", "current-password"),
    ("code", "Code reçu par courrier", "text", "Par exemple ABCD-EFGH-JKMN-PQRS.", "off"),
]


def step_up_form(request: Request, status: int = 200, **values: Any) -> HTMLResponse:
    """The new-device step-up page (also what ``/connexion`` shows when a flagged citizen's sign-in needs it)."""
    username = values.pop("username", "")
    device = values.pop("device", None) or device_of(request)
    fields = [(*f, username if f[0] == "username" else "") for f in DEVICE_FIELDS]
    from hygie.governance.oidc import enabled

    links = [("/citoyen/connexion-fc", "Me connecter par le fournisseur d'identité (FranceConnect)")]
    response = _page(request, title="Confirmer ce nouvel appareil", action="/citoyen/appareil", fields=fields,
                     legend="Vos identifiants et le code reçu par courrier", submit="Confirmer et me connecter",
                     intro=[STEP_UP_FR], status=status, links=links if enabled(hub_of(request).settings) else [],
                     **values)  # fmt: skip
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
    from hygie.governance.throttle import SignInThrottle, Throttled, french_wait
    from hygie.portal.pages.web import HOME, set_session_cookie

    form = await checked_form(request)
    username, code = _text(form, "username", 80), _text(form, "code", 40)
    password = str(form.get("password", ""))[:200]
    if not username or not password or not code:
        return step_up_form(request, 422, username=username, error="Saisissez votre identifiant, votre mot de passe "
                            "et le code reçu par courrier.", error_title="Formulaire incomplet")  # fmt: skip
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
        waiting = step_up_form(request, 429, username=username, device=device, error=french_wait(exc.retry_after),
                               error_title="Connexion refusée")  # fmt: skip
        waiting.headers["Retry-After"] = str(exc.retry_after)
        return waiting
    except Unauthenticated:
        return step_up_form(request, 401, username=username, device=device, error=DEVICE_REFUSED_FR,
                            error_title="Connexion refusée")  # fmt: skip
    response = redirect(HOME[role])
    set_session_cookie(response, request, token, max_age)
    keep_device(response, request, device)
    return response


extend_nav(Role.CITIZEN, "/citoyen/coordonnees", "Mes coordonnées pour les avis")
CONTACT_FIELDS = [
    ("email", "Adresse électronique", "email", "Où nous vous prévenons (avis de violation, par exemple).", "email"),
    ("phone", "Téléphone", "tel", "", "tel"),
]


def _contact_form(request: Request, actor: Actor, flagged: bool, values: dict[str, str | None],
                  status: int = 200, **extra: Any) -> HTMLResponse:  # fmt: skip
    fields = [(*f, values.get(f[0]) or "") for f in CONTACT_FIELDS]
    intro = ["Ces coordonnées servent à vous prévenir ; elles sont conservées chiffrées."]
    if flagged:
        fields.append(("code", "Code reçu par courrier", "text", "Laissez vide pour recevoir un code.", "off", ""))
        intro.append(
            "Vos données figuraient dans une fuite : pour changer ces coordonnées, il faut un code à usage unique "
            "envoyé par courrier à l'adresse que nous connaissions avant la fuite. Envoyez le formulaire sans code "
            "pour le recevoir (il arrive sous quelques jours), puis revenez avec lui. Vous pouvez aussi passer par "
            "le fournisseur d'identité (FranceConnect) au niveau de sécurité renforcé."
        )
    return _page(request, title="Mes coordonnées pour les avis", action="/citoyen/coordonnees", fields=fields,
                 legend="Vos coordonnées", submit="Enregistrer", intro=intro, actor=actor, status=status,
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
        return _contact_form(request, actor, True, values, 403, error=CODE_REFUSED_FR, error_title="Code refusé")
    except Invalid as exc:
        return _contact_form(request, actor, False, values, 422, error_title="Coordonnées non enregistrées",
                             error="Vérifiez l'adresse électronique et le téléphone : "
                             + ("l'adresse ne semble pas valable." if "e-mail" in exc.message
                                else "le numéro ne semble pas valable."))  # fmt: skip
    if done.changed:
        return _contact_form(request, actor, False, values, notice_kind="success", notice_title="Enregistré",
                             notice="Vos coordonnées sont enregistrées.")  # fmt: skip
    notice = ("Un code à usage unique part par courrier vers l'adresse que nous connaissions avant la fuite (un seul "
              "courrier à la fois). Revenez avec ce code pour confirmer le changement.") if done.letter else (
              "Nous n'avons pas d'adresse postale pour vous envoyer un code : contactez votre caisse.")  # fmt: skip
    return _contact_form(request, actor, flagged, values, notice_title="Code envoyé par courrier", notice=notice)
