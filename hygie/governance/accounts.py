"""Accounts, sign-in, sessions and scoped API tokens.

Every sign-in attempt, lockout, token minted or refused and account change is recorded through
:func:`hygie.audit.record`. A typed username that matches no account is never recorded: people type their
e-mail address or NIR into login boxes, and the record must not become a list of identifiers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from hygie.audit import Outcome, record
from hygie.config import Settings
from hygie.governance import credentials
from hygie.governance.errors import Conflict, Denied, Invalid, NotFound, Unauthenticated
from hygie.governance.models import Account, ApiToken, AuthSession, Project, ProjectMember
from hygie.governance.policy import STAFF_ROLES, Role
from hygie.keys import KeyCustody, KeyPurpose

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


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes for timezone-aware columns; they were stored in UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class NewAccount:
    account: Account
    totp_uri: str | None
    """otpauth:// URI to hand to the person once (QR code); None for citizens."""


_DUMMY_HASHES: dict[tuple[int, int], str] = {}


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
            raise Invalid(f"the password must have at least {self.settings.password_min_length} characters")

    def create(
        self,
        actor: Actor,
        *,
        username: str,
        role: Role,
        password: str,
        organisation: str | None = None,
        person_index: bytes | None = None,
    ) -> NewAccount:
        """Create an account. The console may create any role; through the API, see ACCOUNT_CREATORS."""
        if actor is not CONSOLE:
            allowed = ACCOUNT_CREATORS.get(actor.role) if actor.role else None
            if not allowed or role not in allowed:
                raise Denied(f"a {actor.role_name or 'visitor'} may not create {role.value} accounts")
        if not username or len(username) > 80 or not username.replace("-", "").replace(".", "").isalnum():
            raise Invalid("username: 1 to 80 letters, digits, dots or hyphens")
        if role == Role.CITIZEN and person_index is None:
            raise Invalid("a citizen account must be tied to an identity vault entry at enrolment")
        if role != Role.CITIZEN and person_index is not None:
            raise Invalid("only citizen accounts are tied to an identity vault entry")
        self._check_password_policy(password)
        if self.session.scalar(select(Account.id).where(Account.username == username)) is not None:
            raise Conflict(f"the username {username!r} is taken")
        if person_index is not None and self.session.scalar(
            select(Account.id).where(Account.person_index == person_index)
        ):
            raise Conflict("this person already has an account")
        totp_uri = None
        sealed = None
        if role in STAFF_ROLES:
            secret = credentials.new_totp_secret()
            sealed = self.custody.wrap(ACCOUNT_SECRETS_KEY, secret, b"totp|" + username.encode())
            totp_uri = credentials.provisioning_uri(secret, username)
        account = Account(
            username=username,
            role=role.value,
            organisation=organisation,
            password_hash=credentials.hash_password(
                password, memory_kib=self.settings.password_memory_kib, iterations=self.settings.password_iterations
            ),
            totp_sealed=sealed,
            person_index=person_index,
            failed_logins=0,
            disabled=False,
            created_at=_now(),
            created_by=actor.ref,
        )
        self.session.add(account)
        self.session.flush()
        record(
            self.session,
            actor=actor.ref,
            role=actor.role_name,
            action="account.create",
            object=f"account:{account.id}",
            detail={"role": role.value},
        )
        return NewAccount(account, totp_uri)

    def get(self, account_id: int) -> Account:
        account = self.session.get(Account, account_id)
        if account is None:
            raise NotFound(f"no account {account_id}")
        return account

    def by_username(self, username: str) -> Account | None:
        return self.session.scalar(select(Account).where(Account.username == username))

    def totp_secret(self, account: Account) -> bytes:
        if account.totp_sealed is None:
            raise Conflict(f"account {account.id} has no second factor")
        return self.custody.unwrap(ACCOUNT_SECRETS_KEY, account.totp_sealed, b"totp|" + account.username.encode())

    def set_disabled(self, actor: Actor, account_id: int, disabled: bool) -> Account:
        account = self.get(account_id)
        if actor is not CONSOLE:
            allowed = ACCOUNT_CREATORS.get(actor.role) if actor.role else None
            if not allowed or Role(account.role) not in allowed:
                raise Denied(f"a {actor.role_name} may not change {account.role} accounts")
            if actor.account_id == account.id:
                raise Denied("nobody changes their own account's standing")
        account.disabled = disabled
        if not disabled:
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

    def login(self, username: str, password: str, totp: str | None) -> tuple[str, AuthSession, Account]:
        """Check a password (and second factor) and open a session. Raises Unauthenticated, recorded.

        The caller commits (the record of a failure is committed too, before the refusal is returned).
        """
        account = self.by_username(username)
        now = _now()
        if account is None:
            # Same work as a real check, so response time does not tell which usernames exist.
            credentials.check_password(password, self._dummy_hash())
            record(
                self.session,
                actor="anonymous",
                action="auth.login",
                outcome=Outcome.DENIED,
                detail={"reason": "unknown account"},
            )
            raise self._refuse(Unauthenticated("wrong username, password or code"))
        ref = f"account:{account.id}"
        if account.disabled:
            record(
                self.session,
                actor=ref,
                role=account.role,
                action="auth.login",
                outcome=Outcome.DENIED,
                detail={"reason": "account disabled"},
            )
            raise self._refuse(Unauthenticated("this account is disabled; contact your organisation's administrator"))
        if account.locked_until is not None and _aware(account.locked_until) > now:
            record(
                self.session,
                actor=ref,
                role=account.role,
                action="auth.login",
                outcome=Outcome.DENIED,
                detail={"reason": "locked"},
            )
            raise self._refuse(
                Unauthenticated(
                    f"this account is locked after {self.settings.login_max_failures} failed sign-ins; "
                    f"try again after {_aware(account.locked_until).strftime('%H:%M UTC')}"
                )
            )
        ok = credentials.check_password(password, account.password_hash)
        reason = "wrong password"
        if ok and Role(account.role) in STAFF_ROLES:
            ok = totp is not None and credentials.check_totp(self.totp_secret(account), totp)
            reason = "wrong or missing second factor"
        if not ok:
            account.failed_logins += 1
            detail: dict[str, object] = {"reason": reason, "failures": account.failed_logins}
            if account.failed_logins >= self.settings.login_max_failures:
                account.locked_until = now + timedelta(minutes=self.settings.lockout_minutes)
                account.failed_logins = 0
                detail["locked_minutes"] = self.settings.lockout_minutes
            record(
                self.session, actor=ref, role=account.role, action="auth.login", outcome=Outcome.DENIED, detail=detail
            )
            raise self._refuse(Unauthenticated("wrong username, password or code"))
        account.failed_logins = 0
        account.locked_until = None
        token = credentials.new_token(credentials.SESSION_PREFIX)
        auth = AuthSession(
            token_hash=credentials.token_hash(token),
            account_id=account.id,
            created_at=now,
            expires_at=now + timedelta(minutes=self.settings.session_minutes),
        )
        self.session.add(auth)
        self.session.flush()
        record(self.session, actor=ref, role=account.role, action="auth.login", detail={"session": auth.id})
        return token, auth, account

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
            auth = self.session.scalar(select(AuthSession).where(AuthSession.token_hash == digest))
            if auth is None or auth.revoked_at is not None or _aware(auth.expires_at) <= now:
                raise Unauthenticated("the session has expired or was closed; sign in again")
            account = self.get(auth.account_id)
            scopes = ROLE_SCOPES[Role(account.role)]
            project_id = None
            via = "session"
        elif token.startswith(credentials.TOKEN_PREFIX):
            api = self.session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
            if api is None or api.revoked_at is not None or _aware(api.expires_at) <= now:
                raise Unauthenticated("the API token has expired or was revoked; mint a new one")
            account = self.get(api.account_id)
            # A token never holds more than its owner's role allows, even if the role changed since.
            scopes = frozenset(api.scopes) & ROLE_SCOPES[Role(account.role)]
            project_id = api.project_id
            via = "token"
        else:
            raise Unauthenticated("not a Hygie session or API token")
        if account.disabled:
            raise Unauthenticated("this account is disabled")
        return Actor(account.id, Role(account.role), scopes, project_id, via)

    # -- API tokens -------------------------------------------------------------------------------

    def mint_token(
        self, actor: Actor, *, name: str, scopes: list[str], days: int, project_id: int | None = None
    ) -> tuple[str, ApiToken]:
        """A token for the actor's own account, never wider than their role. Refusals raise Denied (the
        caller records them)."""
        if actor.account_id is None or actor.role is None:
            raise Denied("only a signed-in account can mint tokens")
        if actor.via != "session":
            raise Denied("tokens are minted from a signed-in session, not from another token")
        wanted = frozenset(scopes)
        unknown = wanted - {Scope.GOVERNANCE, Scope.DATA, Scope.AUDIT, Scope.CITIZEN}
        if unknown or not wanted:
            raise Invalid(f"scopes must be among governance, data, audit, citizen; got {sorted(scopes)}")
        beyond = wanted - ROLE_SCOPES[actor.role]
        if beyond:
            raise Denied(f"a {actor.role.value} may not hold the scope(s) {', '.join(sorted(beyond))}")
        if Scope.DATA in wanted and project_id is None:
            raise Invalid("a data-scoped token names the one project it may reach (project_id)")
        if project_id is not None:
            member = self.session.scalar(
                select(ProjectMember.id).where(
                    ProjectMember.project_id == project_id, ProjectMember.account_id == actor.account_id
                )
            )
            if member is None:
                raise Denied(f"you are not a member of project {project_id}")
            project = self.session.get(Project, project_id)
            if Scope.DATA in wanted and (project is None or project.status != "active"):
                raise Denied(f"project {project_id} is not active: no data token for it")
        if not 1 <= days <= self.settings.api_token_max_days:
            raise Invalid(f"days must be between 1 and {self.settings.api_token_max_days}")
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
            raise NotFound(f"you have no token {token_id}")
        row.revoked_at = _now()
        record(self.session, actor=actor.ref, role=actor.role_name, action="token.revoke", object=f"token:{row.id}")
