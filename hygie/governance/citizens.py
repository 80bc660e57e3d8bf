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

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hygie.audit import record
from hygie.governance import letters
from hygie.governance.accounts import CONSOLE, Accounts, Actor, NewAccount
from hygie.governance.errors import Conflict, Denied, Invalid
from hygie.governance.models import Account, OptOut
from hygie.governance.policy import Role
from hygie.hub import Hub
from hygie.identity.nir import is_valid_nir
from hygie.identity.vault import Identity


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
        nir = nir.replace(" ", "").upper()
        refusal = Denied("these details do not match our records; check them, or contact your insurance fund")
        if not is_valid_nir(nir):
            raise refusal
        identity = self.hub.vault(self.session).find(nir)
        if identity is None or not _matches(identity, last_name, birth_date):
            raise refusal
        return self.open_account(self.hub.pseudonymiser.index(nir), username=username, password=password, via="vault")

    # -- postal activation --------------------------------------------------------------------------------

    def _spend(self, bucket: str, key: str, limit: int, hours: int) -> None:
        from hygie.governance.limits import spend

        spend(self.hub, bucket, key, limit=limit, window_seconds=hours * 3600)

    def request_letter(self, *, nir: str, last_name: str, birth_date: str, source: str) -> None:
        """Ask for an activation letter. Says nothing: a match queues a letter with a one-time code to the address
        the vault holds (before the first breach, for a person named in one), at most one live letter per person
        per period; no match does nothing. Limited per source and per typed NIR (its blind index) in the database
        (:class:`hygie.governance.limits.Limited`); recorded with its outcome (never the details typed).

        Call it before the session has written anything (the limiter's own transaction, on SQLite)."""
        settings = self.hub.settings
        self._spend("citizen.letter.source", source, settings.citizen_letter_requests_per_source,
                    settings.citizen_letter_window_hours)  # fmt: skip
        nir = nir.replace(" ", "").upper()
        if not is_valid_nir(nir):  # no such person can exist (the NIR's key says so, publicly): nothing to limit
            record(self.session, actor="anonymous", action="citizen.letter.request", detail={"outcome": "no match"})
            return
        person_index = self.hub.pseudonymiser.index(nir)
        self._spend("citizen.letter.nir", person_index.hex(), settings.citizen_letter_requests_per_nir,
                    settings.citizen_letter_window_hours)  # fmt: skip
        outcome = self._letter_for(nir, person_index, last_name, birth_date)
        if outcome != "letter queued":  # the same work either way: the response time does not tell a match
            letters.live_letter(self.session, person_index, letters.Purpose.ACTIVATION, settings)
            letters.postal_identity(self.hub, self.session, person_index)
            letters.decoy(self.hub)
        record(self.session, actor="anonymous", action="citizen.letter.request", detail={"outcome": outcome})

    def _letter_for(self, nir: str, person_index: bytes, last_name: str, birth_date: str) -> str:
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
        """Open the account with the code of an activation letter and the NIR it was sent for (the NIR lets wrong
        codes be limited per person as well as per source). Every refusal is the same (``CODE_REFUSAL``). The
        browser it was done from (``device``) is trusted: the postal code vouched for it."""
        settings = self.hub.settings
        if len(password) < settings.password_min_length:  # before the code is spent
            raise Invalid(f"the password must have at least {settings.password_min_length} characters")
        nir = nir.replace(" ", "").upper()
        if not is_valid_nir(nir):  # no letter was ever sent for it: the same refusal, limited per source
            self._spend("citizen.code.source", source, settings.citizen_code_attempts_per_source,
                        settings.citizen_code_window_hours)  # fmt: skip
            raise Denied(letters.CODE_REFUSAL)
        person_index = self.hub.pseudonymiser.index(nir)
        self.spend_code_attempt(source, person_index.hex())
        letters.redeem(self.session, self.hub.custody, code, purpose=letters.Purpose.ACTIVATION,
                       person_index=person_index)  # fmt: skip
        created = self.open_account(person_index, username=username, password=password, via="post")
        if device:
            letters.trust_device(self.session, created.account.id, device, "post")
        return created

    def spend_code_attempt(self, source: str, person_key: str) -> None:
        """Count one postal-code attempt from ``source`` for the person keyed ``person_key`` (a blind index or a
        digest, never an identifier), or raise ``Limited``."""
        settings = self.hub.settings
        hours = settings.citizen_code_window_hours
        self._spend("citizen.code.source", source, settings.citizen_code_attempts_per_source, hours)
        self._spend("citizen.code.person", person_key, settings.citizen_code_attempts_per_person, hours)

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
            "your data was in a leak, so opening your account needs a stronger check: sign in through the identity "
            "provider at its higher level, or ask for an activation letter by post"
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
            raise Invalid("this e-mail address does not look valid")
        if values["phone"] is not None and not _PHONE.fullmatch(values["phone"]):
            raise Invalid("this phone number does not look valid (digits, spaces, +, . or - only)")
        via = "session"
        if letters.flagged(self.session, person_index) and self._strong_step_up(actor):
            via = "oidc"  # the provider vouched at the strong level within oidc_step_up_minutes
        elif letters.flagged(self.session, person_index):
            if not code:
                outcome = self.request_step_up(person_index, letters.Purpose.CONTACT)
                record(self.session, actor=actor.ref, role=actor.role_name, action="citizen.contact_details",
                       detail={"stored": False, "step_up": outcome})  # fmt: skip
                return ContactChange(changed=False, letter=outcome != "no postal address on file")
            self.spend_code_attempt(source, person_index.hex())
            letters.redeem(self.session, self.hub.custody, code, purpose=letters.Purpose.CONTACT,
                           person_index=person_index)  # fmt: skip
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
            raise Conflict("you already have an account; sign in, or ask your insurance fund to reset it")
        created = Accounts(self.session, self.hub.custody, self.hub.settings).create(
            CONSOLE, username=username, role=Role.CITIZEN, password=password, person_index=person_index
        )
        record(self.session, actor=f"account:{created.account.id}", role=Role.CITIZEN.value, action="citizen.enrol",
               detail={"via": via})  # fmt: skip
        return created

    def _person_index(self, actor: Actor) -> bytes:
        if actor.role != Role.CITIZEN or actor.account_id is None:
            raise Denied("only a signed-in citizen can do this, for themselves")
        account = self.session.get(Account, actor.account_id)
        if account is None or account.person_index is None:
            raise Denied("this account is not tied to an insured person")
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
