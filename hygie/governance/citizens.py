"""Citizens: enrolment against the identity vault, and objection to the use of their data (opt-out).

Enrolment here is the embedded default: a person proves who they are with their NIR, family name and birth
date as held in the vault. A national deployment puts an OpenID Connect provider (FranceConnect) in front:
it vouches for the same identity attributes, and :meth:`Citizens.enrol` takes over from the vault lookup.
The account keeps only the vault's keyed blind index of the NIR, never the NIR itself.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hygie.audit import record
from hygie.governance.accounts import CONSOLE, Accounts, Actor, NewAccount
from hygie.governance.errors import Conflict, Denied
from hygie.governance.models import Account, OptOut
from hygie.governance.policy import Role
from hygie.hub import Hub
from hygie.identity.nir import is_valid_nir


def _folded(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isalnum()).casefold()


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
        """Create a citizen account tied to the vault entry these details match. Every refusal reads the same,
        so the answer never tells which detail was wrong (or whether a NIR is in the vault)."""
        nir = nir.replace(" ", "").upper()
        refusal = Denied("these details do not match our records; check them, or contact your insurance fund")
        if not is_valid_nir(nir):
            raise refusal
        identity = self.hub.vault(self.session).find(nir)
        if identity is None or _folded(identity.last_name) != _folded(last_name) or identity.birth_date != birth_date:
            raise refusal
        return self.open_account(self.hub.pseudonymiser.index(nir), username=username, password=password, via="vault")

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
