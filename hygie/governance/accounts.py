# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Accounts, sign-in, sessions and scoped API tokens.

Every sign-in attempt, throttled source, token minted or refused and account change is recorded through
:func:`hygie.audit.record`. A typed username that matches no account is never recorded: people type their
e-mail address or NIR into login boxes, and the record must not become a list of identifiers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import Session

from hygie.audit import Outcome, record
from hygie.config import Settings
from hygie.governance import credentials
from hygie.governance.errors import Conflict, Denied, Invalid, NotFound, Unauthenticated
from hygie.governance.lineage import creator_id, shared_lineage
from hygie.governance.models import Account, ApiToken, AuthSession, Project, ProjectMember
from hygie.governance.policy import STAFF_ROLES, Role
from hygie.i18n import N_
from hygie.keys import KeyCustody, KeyPurpose
from hygie.mail import send
from hygie.mail import server as mail_server
from hygie.vocabulary import ROLE, word

ACCOUNT_SECRETS_KEY = "account-secrets"
"""Wraps each account's TOTP secret."""


class Scope:
    GOVERNANCE = "governance"
    """Projects, reviews, accounts."""
    DATA = "data"
    """A project's view (researchers who are members of an active project only)."""
    AUDIT = "audit"
    """Reading the audit record."""
    CITIZEN = "citizen"
    """A citizen's own data, objections and notices."""


ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.CITIZEN: frozenset({Scope.CITIZEN}),
    Role.RESEARCHER: frozenset({Scope.GOVERNANCE, Scope.DATA}),
    Role.REVIEWER: frozenset({Scope.GOVERNANCE}),
    Role.DPO: frozenset({Scope.GOVERNANCE, Scope.AUDIT}),
    Role.OPERATOR: frozenset({Scope.GOVERNANCE}),
    Role.AUDITOR: frozenset({Scope.AUDIT}),
}
"""What each role may ever do; no role holds every scope, and none but researchers reach data."""

ACCOUNT_CREATORS: dict[Role, frozenset[Role]] = {
    Role.DPO: frozenset({Role.RESEARCHER, Role.REVIEWER, Role.DPO, Role.OPERATOR, Role.AUDITOR}),
    Role.OPERATOR: frozenset({Role.RESEARCHER}),
}
"""Who may create which accounts through the API. Operators run the platform, so they may not create the
reviewers or auditors who would check them; citizens enrol themselves."""

CONFIRMED_ROLES: frozenset[Role] = STAFF_ROLES
"""Roles whose accounts, created through the API, stay unusable until a second person confirms them: those that
grant governance power (reviewer, DPO, operator, auditor), and researchers too. A researcher account is the one
that reaches data: if its creator alone vouched for its holder (and chose the mailbox its enrolment code goes to),
one person could make a puppet researcher whose plausible project honest reviewers approve."""

ACCOUNT_CONFIRMERS: dict[Role, frozenset[Role]] = {
    Role.DPO: CONFIRMED_ROLES,
    Role.AUDITOR: CONFIRMED_ROLES,
}
"""Who may confirm the creation of which accounts, besides whoever may create them (ACCOUNT_CREATORS). The
confirmer is never the creator, the account itself, nor an account the same creator made; the console (the
controller) may confirm too."""


class Status:
    PENDING_CONFIRMATION = "pending_confirmation"
    """A governance role waiting for a second person's confirmation: no enrolment code exists yet."""
    PENDING_ENROLMENT = "pending_enrolment"
    """Waiting for its holder to enrol from the one-time code mailed to them: no usable credentials yet."""
    ACTIVE = "active"


_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")


def _normal_email(text: str) -> str:
    return text.strip().lower()


def _normal_code(text: str) -> str:
    return "".join(text.split()).replace("-", "").upper()


def code_hash(code: str) -> str:
    """SHA-256 of a normalised enrolment code (160 random bits: a fast hash is enough, as for tokens)."""
    return hashlib.sha256(_normal_code(code).encode("ascii", "replace")).hexdigest()


ENROLMENT_REFUSAL = N_(
    "this enrolment code is not valid: it may be mistyped, already used or expired; "
    "ask the person who created your account to send a new one"
)
"""The one answer to an unknown, used, expired or withdrawn enrolment code."""


@dataclass(frozen=True)
class Actor:
    """Who is acting, as established by a session, a token, or the console."""

    account_id: int | None
    role: Role | None
    scopes: frozenset[str] = field(default_factory=frozenset)
    project_id: int | None = None
    """A token bound to one project reaches only that project."""
    via: str = "anonymous"

    @property
    def ref(self) -> str:
        if self.account_id is not None:
            return f"account:{self.account_id}"
        return self.via

    @property
    def role_name(self) -> str | None:
        return self.role.value if self.role else None


CONSOLE = Actor(account_id=None, role=None, via="console")
"""The operator's console (``hygie`` CLI run with the hub's keys); its acts are recorded as such."""
ANONYMOUS = Actor(account_id=None, role=None, via="anonymous")
SYSTEM = Actor(account_id=None, role=None, via="system")
"""The platform itself (scheduled work: expiry sweeps)."""


def _now() -> datetime:
    return datetime.now(UTC)


_SESSION_CHECK = (
    select(AuthSession.revoked_at, AuthSession.expires_at, Account.id, Account.role, Account.disabled)
    .join(Account, Account.id == AuthSession.account_id)
    .where(AuthSession.token_hash == bindparam("digest"))
)
"""A session token's state and its account's, in one statement built once (asked at every request)."""


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes for timezone-aware columns; they were stored in UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class NewAccount:
    account: Account
    totp_uri: str | None
    """otpauth:// URI to hand to the person once (QR code); None for citizens, and always None unless the
    console created the account with its password."""
    enrolment_mail: str | None = None
    """'sent' or 'failed' when an enrolment code was mailed to the holder; None when none was (yet)."""


@dataclass(frozen=True)
class Enrolled:
    account: Account
    totp_uri: str
    """otpauth:// URI for the holder's authenticator app, given to the holder once, at enrolment."""
    totp_secret: str
    """The same secret in base32, for typing into an app by hand."""


_DUMMY_HASHES: dict[tuple[int, int], str] = {}

REFUSED = N_("wrong username, password or code")
"""The one answer to every refused sign-in, whatever the reason (which only the record holds)."""


def new_session(session: Session, settings: Settings, account_id: int, now: datetime) -> tuple[str, AuthSession]:
    """A session for an account that has just proven itself (password and second factor, or an identity provider):
    the bearer token, returned once, and its row (only the token's hash is stored)."""
    token = credentials.new_token(credentials.SESSION_PREFIX)
    auth = AuthSession(
        token_hash=credentials.token_hash(token),
        account_id=account_id,
        created_at=now,
        expires_at=now + timedelta(minutes=settings.session_minutes),
    )
    session.add(auth)
    session.flush()
    return token, auth


class Accounts:
    def __init__(self, session: Session, custody: KeyCustody, settings: Settings) -> None:
        self.session = session
        self.custody = custody
        self.settings = settings
        custody.ensure(ACCOUNT_SECRETS_KEY, KeyPurpose.WRAP)

    def _dummy_hash(self) -> str:
        key = (self.settings.password_memory_kib, self.settings.password_iterations)
        if key not in _DUMMY_HASHES:
            _DUMMY_HASHES[key] = credentials.hash_password(
                "not anyone's password", memory_kib=key[0], iterations=key[1]
            )
        return _DUMMY_HASHES[key]

    # -- accounts ---------------------------------------------------------------------------------

    def _check_password_policy(self, password: str) -> None:
        if len(password) < self.settings.password_min_length:
            raise Invalid(
                N_(
                    "the password must have at least {count} characters",
                    count=self.settings.password_min_length,
                )
            )

    def create(
        self,
        actor: Actor,
        *,
        username: str,
        role: Role,
        password: str | None = None,
        email: str | None = None,
        organisation: str | None = None,
        person_index: bytes | None = None,
    ) -> NewAccount:
        """Create an account.

        Through the API (any actor but the console; see ACCOUNT_CREATORS), the creator never holds the account's
        credentials: no password is taken and no second factor is returned. The holder's work e-mail address is
        kept sealed; the account waits for a second person's confirmation if its role is in CONFIRMED_ROLES, then
        for its holder to enrol from a one-time code mailed to that address. The console (the controller's
        installation act, and citizens' self-enrolment) may still set a password and get the second factor at once.
        """
        if actor is not CONSOLE:
            allowed = ACCOUNT_CREATORS.get(actor.role) if actor.role else None
            if not allowed or role not in allowed:
                raise Denied(
                    N_(
                        "a {role} may not create {kind} accounts",
                        role=word(ROLE, actor.role_name or "visitor"),
                        kind=word(ROLE, role.value),
                    )
                )
            if password is not None:
                raise Denied(
                    N_(
                        "whoever creates an account never chooses its password: its holder does, "
                        "from the enrolment code mailed to them"
                    )
                )
            if email is None:
                raise Invalid(N_("email: the holder's work e-mail address, where their enrolment code is sent"))
        if not username or len(username) > 80 or not username.replace("-", "").replace(".", "").isalnum():
            raise Invalid(N_("username: 1 to 80 letters, digits, dots or hyphens"))
        if role == Role.CITIZEN and person_index is None:
            raise Invalid(N_("a citizen account must be tied to an identity vault entry at enrolment"))
        if role != Role.CITIZEN and person_index is not None:
            raise Invalid(N_("only citizen accounts are tied to an identity vault entry"))
        if role == Role.CITIZEN and (password is None or email is not None):
            raise Invalid(N_("a citizen enrols with a password and no e-mail address"))
        if password is None and email is None:
            raise Invalid(N_("give a password (console only) or the holder's work e-mail address"))
        if email is not None:
            email = _normal_email(email)
            if len(email) > 254 or not _EMAIL.fullmatch(email):
                raise Invalid(N_("email: a work e-mail address, such as firstname.lastname@organisation.fr"))
        if password is not None:
            self._check_password_policy(password)
        if self.session.scalar(select(Account.id).where(Account.username == username)) is not None:
            raise Conflict(N_("the username {username} is taken", username=repr(username)))
        if person_index is not None and self.session.scalar(
            select(Account.id).where(Account.person_index == person_index)
        ):
            raise Conflict(N_("this person already has an account"))
        totp_uri = None
        sealed = None
        if password is not None and role in STAFF_ROLES:
            secret = credentials.new_totp_secret()
            sealed = self.custody.wrap(ACCOUNT_SECRETS_KEY, secret, b"totp|" + username.encode())
            totp_uri = credentials.provisioning_uri(secret, username)
        if password is not None:
            status = Status.ACTIVE
        elif actor is not CONSOLE and role in CONFIRMED_ROLES:
            status = Status.PENDING_CONFIRMATION
        else:
            status = Status.PENDING_ENROLMENT
        account = Account(
            username=username,
            role=role.value,
            organisation=organisation,
            # Until its holder enrols, an account's password is a random one nobody ever saw (same hashing work
            # as a real one at sign-in, so a pending account answers like any other).
            password_hash=self._hash(password if password is not None else secrets.token_urlsafe(32)),
            totp_sealed=sealed,
            person_index=person_index,
            failed_logins=0,
            disabled=False,
            created_at=_now(),
            created_by=actor.ref,
            status=status,
            email_sealed=None
            if email is None
            else self.custody.wrap(ACCOUNT_SECRETS_KEY, email.encode(), b"email|" + username.encode()),
            enrolled_at=_now() if status == Status.ACTIVE else None,
        )
        self.session.add(account)
        self.session.flush()
        record(
            self.session,
            actor=actor.ref,
            role=actor.role_name,
            action="account.create",
            object=f"account:{account.id}",
            detail={"role": role.value, "status": status},
        )
        mail = self._mail_enrolment(actor, account) if status == Status.PENDING_ENROLMENT else None
        return NewAccount(account, totp_uri, mail)

    def _hash(self, password: str) -> str:
        return credentials.hash_password(
            password, memory_kib=self.settings.password_memory_kib, iterations=self.settings.password_iterations
        )

    def _may_manage(self, actor: Actor, role: Role) -> bool:
        """May create or confirm accounts of this role (the console may)."""
        if actor is CONSOLE:
            return True
        if actor.role is None:
            return False
        return role in ACCOUNT_CREATORS.get(actor.role, frozenset()) | ACCOUNT_CONFIRMERS.get(actor.role, frozenset())

    def _mail_enrolment(self, actor: Actor, account: Account) -> str:
        """Draw a new one-time enrolment code (voiding any earlier one), keep its hash, and mail it to the holder's
        sealed address. The code exists in clear only in this function and in the holder's mailbox."""
        assert account.email_sealed is not None
        code = base64.b32encode(secrets.token_bytes(20)).decode("ascii")
        shown = "-".join(code[i : i + 4] for i in range(0, len(code), 4))
        expires = _now() + timedelta(hours=self.settings.enrolment_code_hours)
        address = self.custody.unwrap(
            ACCOUNT_SECRETS_KEY, account.email_sealed, b"email|" + account.username.encode()
        ).decode()
        portal = self.settings.enrolment_portal_url.rstrip("/")
        body = (
            "Bonjour,\n\n"
            f"Un compte Hygie « {account.username} » (rôle : {account.role}) a été ouvert pour vous"
            + (f" ({account.organisation})" if account.organisation else "")
            + ".\n\nPour l'activer, ouvrez la page\n\n"
            f"    {portal}/activation\n\n"
            f"et saisissez ce code d'activation :\n\n    {shown}\n\n"
            "Vous y choisirez votre mot de passe et recevrez votre second facteur (application d'authentification). "
            f"Ce code ne sert qu'une fois et expire le {expires.strftime('%d/%m/%Y à %H:%M UTC')}.\n"
            "Personne d'autre ne le connaît : ne le transmettez à personne, pas même à qui a créé votre compte.\n"
            "Si vous n'attendiez pas ce message, signalez-le au délégué à la protection des données.\n\n"
            "— Hygie\n"
        )
        # The code is valid before its mail can arrive; the transaction is committed before the SMTP server is
        # talked to (a slow or unreachable server holds no database lock). The account and its record are kept
        # whatever the mail does, as before; a failed mail voids the code.
        account.enrolment_code_hash = code_hash(code)
        account.enrolment_expires_at = expires
        self.session.commit()
        error = send(
            mail_server(
                self.settings,
                host=self.settings.mail_smtp_host,
                port=self.settings.mail_smtp_port,
                sender=self.settings.mail_from,
            ),
            to=address,
            subject="Activez votre compte Hygie / Activate your Hygie account",
            body=body,
        )
        del address, code, shown, body
        if error is not None:
            account.enrolment_code_hash = None
            account.enrolment_expires_at = None
        record(
            self.session,
            actor=actor.ref,
            role=actor.role_name,
            action="account.enrolment_mail",
            object=f"account:{account.id}",
            outcome=Outcome.OK if error is None else Outcome.FAILED,
            detail={"status": "sent", "expires_at": expires.isoformat()}
            if error is None
            else {"status": "failed", "error": error},
        )
        return "sent" if error is None else "failed"

    def confirm(self, actor: Actor, account_id: int, *, email: str) -> NewAccount:
        """A second person confirms the creation of a governance account, re-typing the holder's work e-mail
        address from their organisation's directory (it must match the sealed one). The enrolment code is then
        mailed to the holder."""
        account = self._acted_on(
            actor,
            account_id,
            ACCOUNT_CREATORS.keys() | ACCOUNT_CONFIRMERS.keys(),
            N_("a {role} may not confirm accounts", role=word(ROLE, actor.role_name or "visitor")),
        )
        role = Role(account.role)
        if not self._may_manage(actor, role):
            raise Denied(
                N_(
                    "a {role} may not confirm {kind} accounts",
                    role=word(ROLE, actor.role_name or "visitor"),
                    kind=word(ROLE, role.value),
                )
            )
        if actor.account_id == account.id:
            raise Denied(N_("nobody confirms their own account"))
        if actor.ref == account.created_by:
            raise Denied(N_("whoever created an account cannot confirm it: a second person must"))
        if actor.account_id is not None:
            mine = self.get(actor.account_id)
            if mine.created_by == account.created_by:
                raise Denied(
                    N_("an account made by the same person as this one cannot confirm it: ask someone else to")
                )
            creator = creator_id(account.created_by)
            if creator is not None and shared_lineage(self.session, mine.id, creator):
                raise Denied(N_("an account of its creator's lineage (one created the other) cannot confirm it: ask "
                                "someone independent"))  # fmt: skip
        if account.status != Status.PENDING_CONFIRMATION or account.disabled:
            raise Conflict(N_("account {account} is not waiting for a confirmation", account=account.id))
        assert account.email_sealed is not None
        sealed = self.custody.unwrap(ACCOUNT_SECRETS_KEY, account.email_sealed, b"email|" + account.username.encode())
        if not hmac.compare_digest(sealed, _normal_email(email).encode()):
            raise Denied(
                N_(
                    "this e-mail address is not the one given when the account was created; check it in the "
                    "holder's organisation directory (if the account was made with a wrong address, disable it and "
                    "create it again)"
                )
            )
        account.status = Status.PENDING_ENROLMENT
        account.confirmed_by = actor.ref
        account.confirmed_at = _now()
        record(
            self.session,
            actor=actor.ref,
            role=actor.role_name,
            action="account.confirm",
            object=f"account:{account.id}",
            detail={"role": role.value, "created_by": account.created_by},
        )
        return NewAccount(account, None, self._mail_enrolment(actor, account))

    def resend_enrolment(self, actor: Actor, account_id: int) -> NewAccount:
        """Mail a new enrolment code to an account's holder (the earlier one stops working)."""
        account = self._acted_on(
            actor,
            account_id,
            ACCOUNT_CREATORS.keys() | ACCOUNT_CONFIRMERS.keys(),
            N_("a {role} may not manage accounts", role=word(ROLE, actor.role_name or "visitor")),
        )
        if not self._may_manage(actor, Role(account.role)):
            raise Denied(
                N_(
                    "a {role} may not manage {kind} accounts",
                    role=word(ROLE, actor.role_name or "visitor"),
                    kind=word(ROLE, account.role),
                )
            )
        if account.status != Status.PENDING_ENROLMENT or account.disabled or account.email_sealed is None:
            raise Conflict(N_("account {account} is not waiting for its holder's enrolment", account=account.id))
        return NewAccount(account, None, self._mail_enrolment(actor, account))

    def enrol(self, code: str, password: str) -> Enrolled:
        """The holder enrols from the one-time code mailed to them: sets a password, gets a new second factor.

        Unknown, used, expired and withdrawn codes get the same refusal. The caller commits.
        """
        self._check_password_policy(password)
        digest = code_hash(code[:100])
        account = self.session.scalar(select(Account).where(Account.enrolment_code_hash == digest))
        if (
            account is None
            or account.status != Status.PENDING_ENROLMENT
            or account.disabled
            or account.enrolment_expires_at is None
            or _aware(account.enrolment_expires_at) <= _now()
        ):
            raise Denied(ENROLMENT_REFUSAL)
        secret = credentials.new_totp_secret()
        account.password_hash = self._hash(password)
        account.totp_sealed = self.custody.wrap(ACCOUNT_SECRETS_KEY, secret, b"totp|" + account.username.encode())
        account.totp_last_step = None  # the time steps spent with an earlier secret say nothing of the new one
        account.status = Status.ACTIVE
        account.enrolled_at = _now()
        account.enrolment_code_hash = None
        account.enrolment_expires_at = None
        account.failed_logins = 0
        account.locked_until = None
        record(
            self.session,
            actor=f"account:{account.id}",
            role=account.role,
            action="account.enrol",
            object=f"account:{account.id}",
        )
        return Enrolled(
            account,
            credentials.provisioning_uri(secret, account.username),
            credentials.totp_secret_text(secret),
        )

    def get(self, account_id: int) -> Account:
        account = self.session.get(Account, account_id)
        if account is None:
            raise NotFound(N_("no account {account}", account=account_id))
        return account

    def _acted_on(self, actor: Actor, account_id: int, roles: Iterable[Role], refusal: str) -> Account:
        """The account ``actor`` acts on. A role that may never act on accounts this way is refused before the id
        is looked up (the same answer whatever the id: account ids cannot be enumerated); a citizen account, never
        listed to staff nor managed by them, answers like a missing one. ``refusal`` is the answer to such a role."""
        if actor is not CONSOLE and (actor.role is None or actor.role not in set(roles)):
            raise Denied(refusal)
        account = self.session.get(Account, account_id)
        if account is None or (actor is not CONSOLE and account.role == Role.CITIZEN.value):
            raise NotFound(N_("no account {account}", account=account_id))
        return account

    def by_username(self, username: str) -> Account | None:
        return self.session.scalar(select(Account).where(Account.username == username))

    def totp_secret(self, account: Account) -> bytes:
        if account.totp_sealed is None:
            raise Conflict(N_("account {account} has no second factor", account=account.id))
        return self.custody.unwrap(ACCOUNT_SECRETS_KEY, account.totp_sealed, b"totp|" + account.username.encode())

    def set_disabled(self, actor: Actor, account_id: int, disabled: bool) -> Account:
        account = self._acted_on(
            actor,
            account_id,
            ACCOUNT_CREATORS.keys(),
            N_("a {role} may not disable or enable accounts", role=word(ROLE, actor.role_name or "visitor")),
        )
        if actor is not CONSOLE:
            allowed = ACCOUNT_CREATORS.get(actor.role) if actor.role else None
            if not allowed or Role(account.role) not in allowed:
                raise Denied(
                    N_(
                        "a {role} may not change {kind} accounts",
                        role=word(ROLE, str(actor.role_name)),
                        kind=word(ROLE, account.role),
                    )
                )
            if actor.account_id == account.id:
                raise Denied(N_("nobody changes their own account's standing"))
        account.disabled = disabled
        if disabled:  # a disabled account's enrolment code stops working (a new one is mailed on request)
            account.enrolment_code_hash = None
            account.enrolment_expires_at = None
        else:
            account.failed_logins = 0
            account.locked_until = None
        record(
            self.session,
            actor=actor.ref,
            role=actor.role_name,
            action="account.disable" if disabled else "account.enable",
            object=f"account:{account.id}",
        )
        return account

    # -- sign-in ----------------------------------------------------------------------------------

    def login(
        self, username: str, password: str, totp: str | None, *, device: str | None = None,
        step_up_code: str | None = None, step_up_only: bool = False,
    ) -> tuple[str, AuthSession, Account]:  # fmt: skip
        """Check a password (and second factor) and open a session. Raises Unauthenticated, recorded.

        Every refusal is the same answer (``REFUSED``) after the same work (one Argon2id verification): an unknown
        username, a disabled or not yet active account, a wrong password, a wrong, missing or already used code.
        Failures never lock an account (that would let anyone lock out anyone): the portal slows the source that
        makes them (:mod:`hygie.governance.throttle`). Each TOTP time step is accepted once per account.

        ``step_up_only`` (the new-device page): accepted only for a breach-flagged citizen on a device not yet
        trusted with a valid postal code; anything else is the same refusal. A breach-flagged citizen's step-up
        (:class:`StepUpNeeded`, code needed or refused) is an ``Unauthenticated`` with the same ``REFUSED`` text:
        callers that queue its letter then give the one refusal (``hygie.governance.citizens.sign_in``).

        The caller commits (the record of a failure is committed too, before the refusal is returned).
        """
        account = self.by_username(username)
        now = _now()
        # Same work whatever the account: response time does not tell which usernames exist or are usable.
        ok = credentials.check_password(password, account.password_hash if account else self._dummy_hash())
        if account is None:
            record(self.session, actor="anonymous", action="auth.login", outcome=Outcome.DENIED,
                   detail={"reason": "unknown account"})  # fmt: skip
            raise self._refuse(Unauthenticated(REFUSED))
        ref = f"account:{account.id}"
        if account.disabled or account.status != Status.ACTIVE:
            reason = "account disabled" if account.disabled else f"account {account.status}"
            record(self.session, actor=ref, role=account.role, action="auth.login", outcome=Outcome.DENIED,
                   detail={"reason": reason})  # fmt: skip
            raise self._refuse(Unauthenticated(REFUSED))
        reason = "wrong password"
        if ok and Role(account.role) in STAFF_ROLES:
            ok, reason = self._spend_totp(account, totp)
        if not ok:
            account.failed_logins += 1
            record(self.session, actor=ref, role=account.role, action="auth.login", outcome=Outcome.DENIED,
                   detail={"reason": reason, "failures": account.failed_logins})  # fmt: skip
            raise self._refuse(Unauthenticated(REFUSED))
        if step_up_only and (Role(account.role) is not Role.CITIZEN or account.person_index is None):
            record(self.session, actor=ref, role=account.role, action="auth.login", outcome=Outcome.DENIED,
                   detail={"reason": "new-device page: not a citizen"})  # fmt: skip
            raise self._refuse(Unauthenticated(REFUSED))
        if Role(account.role) is Role.CITIZEN and account.person_index is not None:
            self._check_device(account, device, step_up_code, step_up_only)
        account.failed_logins = 0
        token, auth = new_session(self.session, self.settings, account.id, now)
        record(self.session, actor=ref, role=account.role, action="auth.login", detail={"session": auth.id})
        return token, auth, account

    def _check_device(
        self, account: Account, device: str | None, step_up_code: str | None, step_up_only: bool = False
    ) -> None:
        """Step-up of a breach-flagged citizen signing in from a new device (:func:`letters.check_sign_in`): no
        session before a postal code (or the provider, through its own sign-in) vouches for the device. With
        ``step_up_only``, nothing but that step-up opens a session (the same refusal otherwise)."""
        from hygie.governance.letters import StepUpNeeded, check_sign_in, flagged, known_device

        assert account.person_index is not None
        if step_up_only and (
            not step_up_code
            or not device
            or not flagged(self.session, account.person_index)
            or known_device(self.session, account.id, device)
        ):
            record(self.session, actor=f"account:{account.id}", role=account.role, action="auth.login",
                   outcome=Outcome.DENIED, detail={"reason": "new-device page: no step-up due"})  # fmt: skip
            raise self._refuse(Unauthenticated(REFUSED))
        try:
            check_sign_in(self.session, self.custody, account.id, account.person_index, device, step_up_code)
        except (StepUpNeeded, Denied) as exc:
            refused = isinstance(exc, Denied)
            record(self.session, actor=f"account:{account.id}", role=account.role, action="auth.login",
                   outcome=Outcome.DENIED, detail={"reason": "new device of a breach-flagged person: step-up "
                   + ("code refused" if refused else "needed")})  # fmt: skip
            needed = StepUpNeeded(account.id, account.person_index)
            needed.code_refused = refused
            raise self._refuse(needed) from None

    def _spend_totp(self, account: Account, code: str | None) -> tuple[bool, str]:
        """Accept ``code`` if it is valid and of a time step later than the last one accepted for this account,
        and make that step the last one, atomically: of two sign-ins with the same code, at most one passes (a
        conditional UPDATE: PostgreSQL's row lock, SQLite's write lock, serialise them)."""
        if account.totp_sealed is None or not code:
            return False, "wrong or missing second factor"
        step = credentials.totp_step(self.totp_secret(account), code)
        if step is None:
            return False, "wrong or missing second factor"
        spent = self.session.execute(
            update(Account)
            .where(Account.id == account.id)
            .where(or_(Account.totp_last_step.is_(None), Account.totp_last_step < step))
            .values(totp_last_step=step)
            .execution_options(synchronize_session=False)
        )
        if getattr(spent, "rowcount", 0) != 1:
            return False, "second factor already used"
        return True, ""

    def _refuse(self, error: Unauthenticated) -> Unauthenticated:
        # A refused sign-in changes state (failure count, lock) and is recorded: both are committed before
        # the refusal is returned, whatever the caller does next.
        self.session.commit()
        error.recorded = True
        return error

    def logout(self, token: str) -> None:
        row = self.session.scalar(select(AuthSession).where(AuthSession.token_hash == credentials.token_hash(token)))
        if row is not None and row.revoked_at is None:
            row.revoked_at = _now()
            record(self.session, actor=f"account:{row.account_id}", action="auth.logout", detail={"session": row.id})

    def authenticate(self, token: str) -> Actor:
        """The actor behind a bearer token (session or API token). Raises Unauthenticated."""
        now = _now()
        digest = credentials.token_hash(token)
        if token.startswith(credentials.SESSION_PREFIX):
            # Every request asks this afresh (no cache: a sign-out or a disabled account acts at once), in one
            # statement rather than two ORM loads (a tenth of a citizen read's own time went to loading them).
            found = self.session.connection().execute(_SESSION_CHECK, {"digest": digest}).first()
            if found is None or found.revoked_at is not None or _aware(found.expires_at) <= now:
                raise Unauthenticated(N_("the session has expired or was closed; sign in again"))
            if found.disabled:
                raise Unauthenticated(N_("this account is disabled"))
            return Actor(found.id, Role(found.role), ROLE_SCOPES[Role(found.role)], None, "session")
        if token.startswith(credentials.TOKEN_PREFIX):
            api = self.session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
            if api is None or api.revoked_at is not None or _aware(api.expires_at) <= now:
                raise Unauthenticated(N_("the API token has expired or was revoked; mint a new one"))
            account = self.get(api.account_id)
            # A token never holds more than its owner's role allows, even if the role changed since.
            scopes = frozenset(api.scopes) & ROLE_SCOPES[Role(account.role)]
            project_id = api.project_id
            via = "token"
        else:
            raise Unauthenticated(N_("not a Hygie session or API token"))
        if account.disabled:
            raise Unauthenticated(N_("this account is disabled"))
        return Actor(account.id, Role(account.role), scopes, project_id, via)

    # -- API tokens -------------------------------------------------------------------------------

    def mint_token(
        self, actor: Actor, *, name: str, scopes: list[str], days: int, project_id: int | None = None
    ) -> tuple[str, ApiToken]:
        """A token for the actor's own account, never wider than their role. Refusals raise Denied (the
        caller records them)."""
        if actor.account_id is None or actor.role is None:
            raise Denied(N_("only a signed-in account can mint tokens"))
        if actor.via != "session":
            raise Denied(N_("tokens are minted from a signed-in session, not from another token"))
        wanted = frozenset(scopes)
        unknown = wanted - {Scope.GOVERNANCE, Scope.DATA, Scope.AUDIT, Scope.CITIZEN}
        if unknown or not wanted:
            raise Invalid(
                N_("scopes must be among governance, data, audit, citizen; got {scopes}", scopes=str(sorted(scopes)))
            )
        beyond = wanted - ROLE_SCOPES[actor.role]
        if beyond:
            raise Denied(
                N_(
                    "a {role} may not hold the scope(s) {scopes}",
                    role=word(ROLE, actor.role.value),
                    scopes=", ".join(sorted(beyond)),
                )
            )
        if Scope.DATA in wanted and project_id is None:
            raise Invalid(N_("a data-scoped token names the one project it may reach (project_id)"))
        if project_id is not None:
            member = self.session.scalar(
                select(ProjectMember.id).where(
                    ProjectMember.project_id == project_id, ProjectMember.account_id == actor.account_id
                )
            )
            if member is None:
                raise Denied(N_("you are not a member of project {project}", project=project_id))
            project = self.session.get(Project, project_id)
            if Scope.DATA in wanted and (project is None or project.status != "active"):
                raise Denied(N_("project {project} is not active: no data token for it", project=project_id))
        if not 1 <= days <= self.settings.api_token_max_days:
            raise Invalid(N_("days must be between 1 and {days}", days=self.settings.api_token_max_days))
        token = credentials.new_token(credentials.TOKEN_PREFIX)
        now = _now()
        row = ApiToken(
            token_hash=credentials.token_hash(token),
            account_id=actor.account_id,
            name=name[:100],
            scopes=sorted(wanted),
            project_id=project_id,
            created_at=now,
            expires_at=now + timedelta(days=days),
        )
        self.session.add(row)
        self.session.flush()
        record(
            self.session,
            actor=actor.ref,
            role=actor.role_name,
            action="token.mint",
            object=f"token:{row.id}",
            project_id=project_id,
            detail={"scopes": sorted(wanted), "days": days},
        )
        return token, row

    def revoke_token(self, actor: Actor, token_id: int) -> None:
        row = self.session.get(ApiToken, token_id)
        if row is None or row.account_id != actor.account_id:
            raise NotFound(N_("you have no token {token}", token=token_id))
        row.revoked_at = _now()
        record(self.session, actor=actor.ref, role=actor.role_name, action="token.revoke", object=f"token:{row.id}")
