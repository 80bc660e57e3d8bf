# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Citizens: enrolment against the identity vault, and objection to the use of their data (opt-out).

Knowing a person's NIR, names and birth date never opens an account over the network: that data has leaked.
Over HTTP a citizen asks for an activation letter (:meth:`Citizens.request_letter`: the same answer whether the
details match or not) and opens the account with the one-time code it carries (:meth:`Citizens.activate`,
``via="post"``), or through an OpenID Connect provider (``via="oidc"``). :meth:`Citizens.enrol` is the insurer's
counter (an agent who checked an identity document in person, the console ``hygie accounts enrol-citizen``, the
demo and test fixtures): it is reachable from no HTTP route. People named in a breach (``BreachFlag``) enrol only
through the strong paths (:meth:`Citizens.check_strong`). The account keeps only the vault's keyed blind index of
the NIR, never the NIR itself.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import re
import time
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hygie.audit import Outcome, record, record_now
from hygie.governance import letters
from hygie.governance.accounts import CONSOLE, Accounts, Actor, NewAccount
from hygie.governance.errors import Conflict, Denied, GovernanceError, Invalid, Unauthenticated
from hygie.governance.limits import Limited
from hygie.governance.models import Account, AuthSession, OptOut
from hygie.governance.policy import Role
from hygie.hub import Hub
from hygie.i18n import N_
from hygie.identity.nir import InvalidNIR, validate_nir
from hygie.identity.vault import Identity


def typed_nir(text: str) -> str | None:
    """A NIR as a citizen typed it, in the one canonical form every blind index is taken of, or None if it is not
    a valid NIR. Compatibility forms (fullwidth digits) are folded (NFKC) first; what is left must be ASCII; then
    python-stdnum's own clean-up (spaces, dots, dashes) and check. Used wherever a citizen types a NIR."""
    folded = unicodedata.normalize("NFKC", text)
    if not folded.isascii():
        return None
    try:
        return validate_nir(folded)
    except InvalidNIR:
        return None


def network_of(source: str) -> str | None:
    """The /48 an IPv6 source (``throttle.client_address`` keys it by its /64) belongs to; None for IPv4. A /48 is
    what one site is commonly given: counted as well as the /64, so 65,536 sources do not buy 65,536 budgets."""
    try:
        network = ipaddress.ip_network(source, strict=False)
    except ValueError:
        return None
    if network.version != 6:
        return None
    return str(network.supernet(new_prefix=48)) if network.prefixlen > 48 else str(network)


class LetterLimited(Limited):
    """Too many letter requests for one typed NIR (429). The request was still handled: a letter is queued if the
    details match and none is live, so a flood with wrong details never keeps the person's own letter from them,
    and the answer (always this one past the limit) never tells a match."""

    def __init__(self, retry_after: int, until: float) -> None:
        # The end of the number's window, to the minute, not a count of seconds: every refusal of one window, with
        # matching details or not, reads the same, a second apart or not.
        moment = datetime.fromtimestamp(math.ceil(until / 60) * 60, UTC).strftime("%Y-%m-%d %H:%M UTC")
        GovernanceError.__init__(
            self,
            N_(
                "too many letter requests for this number: ask again after {moment}. If the details match our "
                "records and no letter is already on its way, one is sent all the same (this says nothing about "
                "any person)",
                moment=moment,
            ),
        )
        self.retry_after = retry_after


def _folded(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isalnum()).casefold()


def _matches(identity: Identity, last_name: str, birth_date: str) -> bool:
    return _folded(identity.last_name) == _folded(last_name) and identity.birth_date == birth_date


_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")
_PHONE = re.compile(r"\+?[0-9][0-9 .\-]{5,25}")

LETTER_ANSWER = (
    "if these details match our records, a letter with an activation code is on its way to the postal address we "
    "hold; it arrives within a few days"
)
"""The one answer to a letter request, whether the details matched or not."""


@dataclass(frozen=True)
class ContactChange:
    changed: bool
    letter: bool
    """True when a code was (or already is) on its way by post: the change waits for it."""


OBJECTION_EFFECT = (
    "Your data is left out at once of every new analysis of running projects (no rebuild is awaited), and of every "
    "extraction built or refreshed from now on; results already published stay published."
)
WITHDRAWAL_EFFECT = (
    "Approved projects may use your pseudonymised data: at once where a project's extraction still holds it, "
    "otherwise from the next time the extraction is built or refreshed. If you object, your data is left out at "
    "once of every new analysis."
)
"""When a choice takes effect, as the API tells the citizen (the page says it in French)."""


@dataclass(frozen=True)
class OptOutState:
    objecting: bool
    since: datetime | None

    @property
    def effect(self) -> str:
        return OBJECTION_EFFECT if self.objecting else WITHDRAWAL_EFFECT


class Citizens:
    def __init__(self, hub: Hub, session: Session) -> None:
        self.hub = hub
        self.session = session

    def enrol(self, *, nir: str, last_name: str, birth_date: str, username: str, password: str) -> NewAccount:
        """The insurer's counter: create a citizen account tied to the vault entry these details match, once an agent
        checked the person's identity document in person (or the controller installs a demo). Never exposed over
        HTTP: knowledge of these details is not proof of identity. Every refusal reads the same."""
        refusal = Denied(N_("these details do not match our records; check them, or contact your insurance fund"))
        canonical = typed_nir(nir)
        if canonical is None:
            raise refusal
        nir = canonical
        identity = self.hub.vault(self.session).find(nir)
        if identity is None or not _matches(identity, last_name, birth_date):
            raise refusal
        return self.open_account(self.hub.pseudonymiser.index(nir), username=username, password=password, via="vault")

    # -- postal activation --------------------------------------------------------------------------------

    def _spend(self, bucket: str, key: str, limit: int, hours: int) -> None:
        from hygie.governance.limits import spend

        spend(self.hub, bucket, key, limit=limit, window_seconds=hours * 3600)

    def request_letter(self, *, nir: str, last_name: str, birth_date: str, source: str) -> LetterLimited | None:
        """Ask for an activation letter. Says nothing: a match queues a letter with a one-time code to the address
        the vault holds (before the first breach, for a person named in one), at most one live letter per person
        per period; no match does nothing. Recorded with its outcome (never the details typed).

        Limited in the database (:class:`hygie.governance.limits.Limited`, nothing done): per source (its /64 for
        IPv6) and per /48, then all sources together (``citizen_letter_requests_per_day``: past it, everyone is
        refused and the first refusal of the window is recorded as ``citizen.letter.cap``, for the DPO). Per typed
        NIR (its blind index): past ``citizen_letter_requests_per_nir`` the request is still handled exactly as
        below (a flood of wrong details never keeps the person's own letter from them) and the returned
        :class:`LetterLimited` is the answer to give (429, raised by the caller once this is committed), match or
        not.

        Call it before the session has written anything (the limiter's own transaction, on SQLite)."""
        settings = self.hub.settings
        hours = settings.citizen_letter_window_hours
        self._spend("citizen.letter.source", source, settings.citizen_letter_requests_per_source, hours)
        network = network_of(source)
        if network is not None:
            self._spend("citizen.letter.net48", network, settings.citizen_letter_requests_per_network, hours)
        self._letter_cap()
        canonical = typed_nir(nir)
        if canonical is None:  # no such person can exist (the NIR's key says so, publicly): nothing to limit
            record(self.session, actor="anonymous", action="citizen.letter.request", detail={"outcome": "no match"})
            return None
        person_index = self.hub.pseudonymiser.index(canonical)
        limited: LetterLimited | None = None
        try:
            self._spend("citizen.letter.nir", person_index.hex(), settings.citizen_letter_requests_per_nir, hours)
        except Limited as exc:
            limited = LetterLimited(exc.retry_after, exc.until or time.time() + exc.retry_after)
        outcome = self._letter_for(person_index, last_name, birth_date)
        if outcome != "letter queued":  # the same work either way: the response time does not tell a match
            letters.live_letter(self.session, person_index, letters.Purpose.ACTIVATION, settings)
            letters.postal_identity(self.hub, self.session, person_index)
            letters.decoy(self.hub)
        detail = {"outcome": outcome} if limited is None else {"outcome": outcome, "nir_limit": "reached"}
        record(self.session, actor="anonymous", action="citizen.letter.request", detail=detail)
        return limited

    def _letter_cap(self) -> None:
        """All letter requests together, per window: past the cap, every request is refused (429, the same for
        all); the first refusal of a window is recorded as ``citizen.letter.cap`` (a mass request: for the DPO)."""
        settings = self.hub.settings
        hours = settings.citizen_letter_window_hours
        try:
            self._spend("citizen.letter.all", "all", settings.citizen_letter_requests_per_day, hours)
        except Limited:
            try:
                self._spend("citizen.letter.cap", "noted", 1, hours)
            except Limited:
                raise
            else:
                record_now(self.hub.session, actor="anonymous", action="citizen.letter.cap", outcome=Outcome.DENIED,
                           detail={"cap": settings.citizen_letter_requests_per_day, "window_hours": hours})  # fmt: skip
            raise

    def _letter_for(self, person_index: bytes, last_name: str, birth_date: str) -> str:
        identity = self.hub.vault(self.session).identities_of([person_index]).get(person_index)
        if identity is None or not _matches(identity, last_name, birth_date):
            return "no match"
        if self.session.scalar(select(Account.id).where(Account.person_index == person_index)) is not None:
            return "already enrolled"
        return self._queue(person_index, letters.Purpose.ACTIVATION)

    def _queue(self, person_index: bytes, purpose: letters.Purpose) -> str:
        if letters.live_letter(self.session, person_index, purpose, self.hub.settings) is not None:
            return "letter already on its way"
        postal = letters.postal_identity(self.hub, self.session, person_index)
        if postal is None or not letters.has_address(postal):
            return "no postal address on file"
        letters.issue(self.hub, self.session, person_index, postal, purpose)
        return "letter queued"

    def activate(
        self, *, code: str, nir: str, username: str, password: str, source: str, device: str | None = None
    ) -> NewAccount:
        """Open the account with the code of an activation letter and the NIR it was sent for. Every refusal is the
        same (``CODE_REFUSAL``). The code is checked first: a right code is never refused by a limit. Only wrong
        codes are counted (:meth:`code_failed`, per source and per person): past a limit a wrong code is answered
        429 instead, so failures by others never lock the person out. The browser it was done from (``device``) is
        trusted: the postal code vouched for it. A letter then tells the person, at the same address, that the
        account was opened (:meth:`_opened_letter`)."""
        settings = self.hub.settings
        if len(password) < settings.password_min_length:  # before the code is spent
            raise Invalid(N_("the password must have at least {count} characters", count=settings.password_min_length))
        canonical = typed_nir(nir)
        if canonical is None:  # no letter was ever sent for it: the same refusal, counted per source
            self.code_failed("activation", source, None)
            raise Denied(letters.CODE_REFUSAL)
        person_index = self.hub.pseudonymiser.index(canonical)
        try:
            letters.redeem(self.session, self.hub.custody, code, purpose=letters.Purpose.ACTIVATION,
                           person_index=person_index)  # fmt: skip
        except Denied:
            self.session.rollback()  # nothing to keep; the limiter's own connection may need the write lock
            self.code_failed("activation", source, person_index.hex())
            raise
        created = self.open_account(person_index, username=username, password=password, via="post")
        if device:
            letters.trust_device(self.session, created.account.id, device, "post")
        self._opened_letter(person_index)
        return created

    def _opened_letter(self, person_index: bytes) -> None:
        """A letter to the address the code went to: "your online account was opened on <date>; if it was not you,
        call ...". Someone who took the code from the print spool or the mail room is then found out by the
        person. Recorded as ``citizen.opened.letter`` with its outcome."""
        postal = letters.postal_identity(self.hub, self.session, person_index)
        outcome = "no postal address on file"
        if postal is not None and letters.has_address(postal):
            letters.issue_notice(self.hub, self.session, person_index, postal, letters.Purpose.ACCOUNT_OPENED)
            outcome = "letter queued"
        record(self.session, actor="system", action="citizen.opened.letter", detail={"outcome": outcome})

    def code_failed(self, kind: str, source: str, person_key: str | None) -> None:
        """Count one wrong postal code of ``kind`` (``activation``, ``contact``, ``device``) from ``source`` (and its
        /48) and for the person keyed ``person_key`` (a blind index or an account reference, never an
        identifier); raise ``Limited`` once one of them is past its limit. Only failures are counted, each kind in
        its own buckets: a right code is checked before any limit and never refused by one."""
        settings = self.hub.settings
        hours = settings.citizen_code_window_hours
        over: Limited | None = None
        keys = [("source", source, settings.citizen_code_attempts_per_source)]
        network = network_of(source)
        if network is not None:
            keys.append(("net48", network, settings.citizen_code_attempts_per_network))
        if person_key is not None:
            keys.append(("person", person_key, settings.citizen_code_attempts_per_person))
        for name, key, limit in keys:
            try:
                self._spend(f"citizen.{kind}.fail.{name}", key, limit, hours)
            except Limited as exc:
                over = over or exc
        if over is not None:
            raise over

    def check_strong(self, person_index: bytes, *, via: str, acr: str | None = None) -> None:
        """The step-up rule of enrolment: a person named in a breach enrols only by post (the address held before
        the breach) or through the provider at the strong level (``oidc_acr_strong`` or above); the OpenID Connect
        enrolment calls this with the ``acr`` it reached before :meth:`open_account`."""
        if via == "post" or not letters.flagged(self.session, person_index):
            return
        order = self.hub.settings.oidc_acr_order
        strong = self.hub.settings.oidc_acr_strong
        if via == "oidc" and acr in order and strong in order and order.index(acr) >= order.index(strong):
            return
        raise Denied(
            N_(
                "your data was in a leak, so opening your account needs a stronger check: sign in through the "
                "identity provider at its higher level, or ask for an activation letter by post"
            )
        )

    def request_step_up(self, person_index: bytes, purpose: letters.Purpose) -> str:
        """Queue a step-up letter (new device, contact change) to the address held before the breach; recorded."""
        outcome = self._queue(person_index, purpose)
        record(self.session, actor="system", action="citizen.step_up.letter",
               detail={"purpose": purpose.value, "outcome": outcome})  # fmt: skip
        return outcome

    # -- contact details for notices ----------------------------------------------------------------------

    def change_contact(self, actor: Actor, *, email: str | None, phone: str | None, code: str | None,
                       source: str) -> ContactChange:  # fmt: skip
        """Change the e-mail and phone the insurer's notices go to (sealed). A person named in a breach needs the
        code of a ``contact`` letter sent by post to the address held before the breach, or a provider login at the
        strong level (``oidc.step_up_acr``) within ``oidc_step_up_minutes``: without either, a letter is queued and
        nothing changes (they are never simply refused)."""
        person_index = self._person_index(actor)
        values = {"email": (email or "").strip() or None, "phone": (phone or "").strip() or None}
        if values["email"] is not None and not _EMAIL.fullmatch(values["email"]):
            raise Invalid(N_("this e-mail address does not look valid"))
        if values["phone"] is not None and not _PHONE.fullmatch(values["phone"]):
            raise Invalid(N_("this phone number does not look valid (digits, spaces, +, . or - only)"))
        via = "session"
        if letters.flagged(self.session, person_index) and self._strong_step_up(actor):
            via = "oidc"  # the provider vouched at the strong level within oidc_step_up_minutes
        elif letters.flagged(self.session, person_index):
            if not code:
                outcome = self.request_step_up(person_index, letters.Purpose.CONTACT)
                record(self.session, actor=actor.ref, role=actor.role_name, action="citizen.contact_details",
                       detail={"stored": False, "step_up": outcome})  # fmt: skip
                return ContactChange(changed=False, letter=outcome != "no postal address on file")
            try:
                letters.redeem(self.session, self.hub.custody, code, purpose=letters.Purpose.CONTACT,
                               person_index=person_index)  # fmt: skip
            except Denied:
                self.session.rollback()
                self.code_failed("contact", source, person_index.hex())
                raise
            via = "post"
        letters.store_contact(self.session, self.hub.custody, person_index, values, via)
        record(self.session, actor=actor.ref, role=actor.role_name, action="citizen.contact_details",
               detail={"fields": sorted(k for k, v in values.items() if v), "stored": True, "via": via})  # fmt: skip
        return ContactChange(changed=True, letter=False)

    def _strong_step_up(self, actor: Actor) -> bool:
        from hygie.governance import oidc

        settings = self.hub.settings
        if actor.account_id is None:
            return False
        reached = oidc.step_up_acr(self.session, settings, actor.account_id)
        return oidc.acr_at_least(settings, reached, settings.oidc_acr_strong)

    def contact(self, actor: Actor) -> dict[str, str | None]:
        person_index = self._person_index(actor)
        record(self.session, actor=actor.ref, role=actor.role_name, action="citizen.contact_details.read")
        return letters.contact_of(self.session, self.hub.custody, person_index) or {"email": None, "phone": None}

    def open_account(self, person_index: bytes, *, username: str, password: str, via: str) -> NewAccount:
        """Open the citizen account of the insured person with this vault blind index, once their identity has been
        established by ``via`` (``vault``: details checked at the console; ``oidc``: an identity provider; ``post``: a
        code mailed to the address on file). Recorded as ``citizen.enrol`` with the path taken."""
        if self.session.scalar(select(Account.id).where(Account.person_index == person_index)) is not None:
            raise Conflict(N_("you already have an account; sign in, or ask your insurance fund to reset it"))
        created = Accounts(self.session, self.hub.custody, self.hub.settings).create(
            CONSOLE, username=username, role=Role.CITIZEN, password=password, person_index=person_index
        )
        record(self.session, actor=f"account:{created.account.id}", role=Role.CITIZEN.value, action="citizen.enrol",
               detail={"via": via})  # fmt: skip
        return created

    def _person_index(self, actor: Actor) -> bytes:
        if actor.role != Role.CITIZEN or actor.account_id is None:
            raise Denied(N_("only a signed-in citizen can do this, for themselves"))
        account = self.session.get(Account, actor.account_id)
        if account is None or account.person_index is None:
            raise Denied(N_("this account is not tied to an insured person"))
        return account.person_index

    def _current(self, person_index: bytes) -> OptOut | None:
        return self.session.scalar(
            select(OptOut)
            .where(OptOut.person_index == person_index, OptOut.withdrawn_at.is_(None))
            .order_by(OptOut.id.desc())
            .limit(1)
        )

    def opt_out_state(self, actor: Actor) -> OptOutState:
        current = self._current(self._person_index(actor))
        record(self.session, actor=actor.ref, role=actor.role_name, action="citizen.opt_out.read")
        return OptOutState(current is not None, current.created_at if current else None)

    def object(self, actor: Actor) -> OptOutState:
        """Object to the use of one's data: left out at once of every query of the running projects' views
        (``hygie.governance.views.excluded_since_build``, applied by ``open_view``) and of every view built or
        refreshed from now on; outputs already computed stay as they are."""
        person_index = self._person_index(actor)
        current = self._current(person_index)
        if current is None:
            current = OptOut(person_index=person_index, created_at=datetime.now(UTC))
            self.session.add(current)
        record(self.session, actor=actor.ref, role=actor.role_name, action="citizen.opt_out")
        return OptOutState(True, current.created_at)

    def withdraw(self, actor: Actor) -> OptOutState:
        """Withdraw the objection: at once where a view generation still holds the person's rows (they objected
        after it was built), otherwise from that project's next build or refresh."""
        current = self._current(self._person_index(actor))
        if current is not None:
            current.withdrawn_at = datetime.now(UTC)
        record(self.session, actor=actor.ref, role=actor.role_name, action="citizen.opt_out.withdraw")
        return OptOutState(False, None)


# -- password sign-in with the new-device step-up of breach-flagged citizens ---------------------------------


def _budget_spent(hub: Hub, bucket: str, key: str, limit: int, hours: int) -> bool:
    """Whether ``(bucket, key)`` has already counted ``limit`` attempts in its current window (a look, no spend)."""
    from hygie.governance import limits
    from hygie.governance.limits import ThrottleCounter

    row = (ThrottleCounter.bucket == bucket) & (ThrottleCounter.key_digest == limits.digest(hub, bucket, key))
    with hub.engine.connect() as connection:
        found = connection.execute(select(ThrottleCounter.count, ThrottleCounter.window_start).where(row)).one_or_none()
    if found is None:
        return False
    count, window_start = int(found[0]), float(found[1])  # (Row.count is tuple's method)
    return count >= limit and window_start > limits.clock() - hours * 3600


def sign_in(
    hub: Hub, *, username: str, password: str, totp: str | None, device: str | None, source: str,
    step_up_code: str | None = None, step_up_only: bool = False,
) -> tuple[str, AuthSession, Account]:  # fmt: skip
    """A password sign-in (API ``POST /auth/login``, pages ``/connexion`` and ``/citoyen/appareil``); callers run it
    inside the sign-in throttle (``SignInThrottle.guarded``), so every refusal slows its source.

    Every refusal is one ``Unauthenticated(REFUSED)``: wrong username or password, wrong or spent code, a
    breach-flagged citizen on a new device (a ``device`` letter is then queued, one live at a time), and with
    ``step_up_only`` (the new-device page) anything but a flagged citizen on a new device with a valid code. So no
    answer tells whether a password was right or a person flagged. Wrong device codes are counted on the account
    (``citizen.device.fail.person``, only once the password was right: nobody else can spend it); once
    ``citizen_code_attempts_per_person`` are spent in the window, a code typed for that account is not taken,
    right or wrong, until the window ends (the holder can still use the identity provider). Every refusal does
    the work of queueing a letter (:func:`letters.decoy` when none was queued), so its time does not tell either."""
    from hygie.governance.accounts import ANONYMOUS, REFUSED, SYSTEM
    from hygie.governance.acts import act
    from hygie.governance.letters import Purpose, StepUpNeeded

    settings = hub.settings
    try:
        with act(hub, ANONYMOUS, "auth.login") as session:
            accounts = Accounts(session, hub.custody, settings)
            code = step_up_code
            account = accounts.by_username(username) if code else None
            if account is not None and _budget_spent(hub, "citizen.device.fail.person", f"account:{account.id}",
                                                     settings.citizen_code_attempts_per_person,
                                                     settings.citizen_code_window_hours):  # fmt: skip
                code = None
            return accounts.login(username, password, totp, device=device, step_up_code=code,
                                  step_up_only=step_up_only)  # fmt: skip
    except StepUpNeeded as exc:
        with act(hub, SYSTEM, "citizen.step_up.letter") as letter_session:
            citizens = Citizens(hub, letter_session)
            if exc.code_refused:
                with contextlib.suppress(Limited):  # the answer stays the one refusal; the budget holds codes back
                    citizens.code_failed("device", source, f"account:{exc.account_id}")
            outcome = citizens.request_step_up(exc.person_index, Purpose.DEVICE)
        if outcome != "letter queued":
            letters.decoy(hub)
        refusal = Unauthenticated(REFUSED)
        refusal.recorded = True  # Accounts.login recorded why
        raise refusal from None
    except Unauthenticated:
        # The same second transaction and record as a step-up refusal, so the audit log's growth (and the public
        # checkpoint) does not tell a right password for a flagged person from any other refusal.
        with act(hub, SYSTEM, "citizen.step_up.letter") as letter_session:
            record(letter_session, actor="system", action="citizen.step_up.letter",
                   detail={"purpose": Purpose.DEVICE.value, "outcome": "not due"})  # fmt: skip
        letters.decoy(hub)  # the work of queueing a letter (a PDF, ~40 ms): the time does not tell a flagged person
        raise
