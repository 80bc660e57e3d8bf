# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Citizens' OpenID Connect path: an identity provider of the FranceConnect kind vouches for who a person is.

The hub is a relying party (Authlib's OpenID Connect claim checks over joserfc's JWT signature checks):

1. :meth:`RelyingParty.start` opens a *flow*: a random ``state``, ``nonce`` and PKCE verifier (S256), stored in
   ``oidc_flow`` (state and nonce only as SHA-256 digests) and bound to the browser by a random *binding* token
   kept in an HttpOnly cookie (only its digest is stored). The browser is sent to the provider's authorization
   endpoint with ``acr_values`` = the level wanted (``oidc_acr`` to enrol, ``oidc_acr_strong`` to step up).
2. :meth:`RelyingParty.finish` takes the callback: the flow is consumed at once, in one conditional UPDATE
   (unused, unexpired, same browser): a replayed or foreign ``state`` is refused. The code is exchanged at the
   token endpoint with the verifier; the ID token's signature is checked against the provider's published keys
   (discovery from ``<issuer>/.well-known/openid-configuration``; asymmetric algorithms only), then ``iss``,
   ``aud``, ``azp``, ``exp``, ``iat``, ``nonce``, ``at_hash`` and ``acr`` (at least the level asked). The identity
   pivot comes from the userinfo endpoint (its ``sub`` must be the ID token's).
3. Enrolment: the pivot is looked up in the vault's keyed pivot index (:mod:`hygie.identity.pivot`); exactly one
   person is *vouched for* on the flow; :meth:`RelyingParty.enrol` then opens their account with the username and
   password they choose (``Citizens.open_account(..., via="oidc")``) within ``oidc_enrol_minutes``, in the same
   browser. Zero or several matches are one refusal. A person named in a breach (an open ``breach_flag``) must have
   logged in at ``oidc_acr_strong``.
4. Step-up: a signed-in citizen logs in again at ``oidc_acr_strong``; the provider must vouch for the account's own
   person. :func:`step_up_acr` tells any service the level the account's last such login reached, if recent.

Design choice: the account signs in with the password chosen at enrolment (the ordinary sign-in); the provider is
the proof of identity at enrolment and the step-up for sensitive changes. No pivot value is stored or recorded.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlencode, urlsplit

from sqlalchemy import DateTime, ForeignKey, Integer, LargeBinary, String, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from hygie.audit import record
from hygie.config import Settings
from hygie.db import Base
from hygie.governance.accounts import NewAccount
from hygie.governance.errors import Denied, GovernanceError
from hygie.governance.models import Account
from hygie.hub import Hub
from hygie.i18n import N_
from hygie.identity import pivot as pivots

ENROL = "enrol"
STEP_UP = "step_up"
SIGN_IN = "sign_in"
ANONYMOUS_ACTOR = "anonymous"
ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")
"""Signature algorithms accepted on an ID token: asymmetric only (never ``none``, never HS256 with the secret)."""
DISCOVERY_TTL_SECONDS = 3600
JWKS_REFRESH_SECONDS = 60
"""An unknown key id refetches the provider's keys at most this often (a rotation is picked up; a forged kid
cannot make the hub hammer the provider)."""


def signing_algorithms(metadata: dict[str, Any]) -> list[str]:
    """The asymmetric algorithms of :data:`ALGORITHMS` the provider's discovery lists for ID tokens (RS256 when it
    lists none: the protocol's default); empty when it lists only others (HS256, none...), which is refused."""
    offered = metadata.get("id_token_signing_alg_values_supported")
    if offered is None:
        offered = ["RS256"]
    return [a for a in ALGORITHMS if isinstance(offered, list) and a in offered]


class OidcFlow(Base):
    """One login at the provider, from start to (at most one) callback, then at most one enrolment."""

    __tablename__ = "oidc_flow"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    binding_hash: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    nonce_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    code_verifier: Mapped[str | None] = mapped_column(String(128), nullable=True)
    """Needed once, at the token endpoint; erased when the flow is consumed."""
    purpose: Mapped[str] = mapped_column(String(20), nullable=False)
    acr_wanted: Mapped[str] = mapped_column(String(40), nullable=False)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"), nullable=True, index=True)
    """The signed-in citizen stepping up (None for an enrolment)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    consumed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    vouched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    """When the provider's answer was accepted (a person matched, or the step-up proved)."""
    acr: Mapped[str | None] = mapped_column(String(40), nullable=True)
    """The assurance level the provider's ID token states (checked to be at least ``acr_wanted``)."""
    person_index: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True)
    enrolled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class OidcRefused(Denied):
    """A refused step of the provider path. ``kind`` selects what the person is told (see the portal's page);
    ``reason`` is what the record keeps (never a claim value)."""

    def __init__(self, kind: str, reason: str, flow_id: int | None = None) -> None:
        super().__init__(f"the identity provider login was refused: {reason}")
        self.kind = kind
        self.reason = reason
        self.flow_id = flow_id
        self.purpose: str | None = None
        """The refused login's purpose (to offer starting it again, at the strong level where that is the cause)."""


class OidcUnavailable(GovernanceError):
    """The provider cannot be reached, or answers nonsense (503): try again later."""

    status = 503


@dataclass(frozen=True)
class Started:
    url: str
    binding: str
    """Goes into the browser's cookie; the flow is refused from any browser without it."""


@dataclass(frozen=True)
class Vouched:
    purpose: str
    acr: str
    session_token: str | None = None
    """A provider sign-in's new session (the browser's cookie), None for the other purposes."""


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def enabled(settings: Settings) -> bool:
    return bool(settings.oidc_issuer)


def acr_at_least(settings: Settings, acr: str | None, wanted: str) -> bool:
    """Whether assurance level ``acr`` is ``wanted`` or stronger, in ``oidc_acr_order``."""
    order = settings.oidc_acr_order
    return acr in order and wanted in order and order.index(acr) >= order.index(wanted)


def step_up_acr(session: Session, settings: Settings, account_id: int) -> str | None:
    """The assurance level reached by this account's latest provider login (a step-up) of the last
    ``oidc_step_up_minutes``, or None. For services that require the strong path for a sensitive change:
    ``acr_at_least(settings, step_up_acr(...), settings.oidc_acr_strong)``."""
    since = _now() - timedelta(minutes=settings.oidc_step_up_minutes)
    row = session.scalars(
        select(OidcFlow)
        .where(
            OidcFlow.account_id == account_id,
            OidcFlow.purpose.in_((STEP_UP, SIGN_IN)),
            OidcFlow.vouched_at.is_not(None),
        )
        .order_by(OidcFlow.vouched_at.desc())
        .limit(1)
    ).first()
    if row is None or row.vouched_at is None or _aware(row.vouched_at) < since:
        return None
    return row.acr


def enrolment_acr(session: Session, settings: Settings, binding: str) -> str | None:
    """The assurance level of the provider login that vouched for the enrolment pending in this browser."""
    flow = _pending(session, settings, binding)
    return None if flow is None else flow.acr


def flagged(session: Session, person_index: bytes) -> bool:
    """Whether this person is named in a breach whose step-up period is still running (``letters.flagged``)."""
    from hygie.governance.letters import flagged as letters_flagged

    return letters_flagged(session, person_index)


# -- the provider's metadata and keys ------------------------------------------------------------------------


class _ProviderCache:
    """Discovery and keys per issuer, shared by the process (fetched again when stale or on an unknown key)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.metadata: dict[str, tuple[float, dict[str, Any]]] = {}
        self.jwks: dict[str, tuple[float, dict[str, Any]]] = {}


_CACHE = _ProviderCache()


def _check_url(url: str, what: str) -> str:
    """https, or http on a loopback host (tests, a local provider): never credentials over clear text elsewhere."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http":
        try:
            loopback = host == "localhost" or ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if loopback:
            return url
    raise OidcUnavailable(f"the provider's {what} must be an https URL (http only on loopback)")


class RelyingParty:
    def __init__(self, hub: Hub, session: Session) -> None:
        settings = hub.settings
        if not settings.oidc_issuer:
            raise Denied(N_("sign-in through an identity provider is not offered by this hub"))
        self.hub = hub
        self.session = session
        self.settings = settings
        self.issuer: str = _check_url(settings.oidc_issuer, "issuer")

    # -- HTTP to the provider --------------------------------------------------------------------------------

    def _client(self) -> Any:
        import httpx

        return httpx.Client(timeout=self.settings.oidc_http_timeout_seconds, follow_redirects=False)

    def _secret(self) -> str:
        if self.settings.oidc_client_secret_file is not None:
            return self.settings.oidc_client_secret_file.read_text(encoding="utf-8").strip()
        if self.settings.oidc_client_secret is not None:
            return self.settings.oidc_client_secret.get_secret_value()
        raise OidcUnavailable("no client secret is configured (oidc_client_secret_file)")

    def _get_json(self, url: str, **kwargs: Any) -> dict[str, Any]:
        import httpx

        try:
            with self._client() as client:
                response = client.get(url, **kwargs)
        except httpx.HTTPError:
            raise OidcUnavailable("the identity provider cannot be reached") from None
        if response.status_code != 200:
            raise OidcUnavailable(f"the identity provider answered {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise OidcUnavailable("the identity provider's answer is not JSON") from None
        if not isinstance(body, dict):
            raise OidcUnavailable("the identity provider's answer is not a JSON object")
        return body

    def metadata(self) -> dict[str, Any]:
        with _CACHE.lock:
            cached = _CACHE.metadata.get(self.issuer)
        if cached is not None and time.monotonic() - cached[0] < DISCOVERY_TTL_SECONDS:
            return cached[1]
        from authlib.oidc.discovery import OpenIDProviderMetadata  # type: ignore[import-untyped]

        body = self._get_json(self.issuer.rstrip("/") + "/.well-known/openid-configuration")
        if body.get("issuer") != self.issuer:
            raise OidcUnavailable("the provider's discovery document names another issuer")
        try:
            OpenIDProviderMetadata(body).validate()
        except ValueError as exc:
            raise OidcUnavailable(f"the provider's discovery document is invalid: {exc}") from None
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
            if not isinstance(body.get(name), str):
                raise OidcUnavailable(f"the provider's discovery document has no {name}")
            _check_url(body[name], name)
        if not signing_algorithms(body):  # else the JOSE library's default set (with HS256) would check the tokens
            raise OidcUnavailable(f"the provider signs ID tokens with none of {', '.join(ALGORITHMS)}")
        with _CACHE.lock:
            _CACHE.metadata[self.issuer] = (time.monotonic(), body)
        return body

    def _keys(self, refresh: bool) -> dict[str, Any]:
        with _CACHE.lock:
            cached = _CACHE.jwks.get(self.issuer)
        if cached is not None and not (refresh and time.monotonic() - cached[0] >= JWKS_REFRESH_SECONDS):
            return cached[1]
        body = self._get_json(self.metadata()["jwks_uri"])
        with _CACHE.lock:
            _CACHE.jwks[self.issuer] = (time.monotonic(), body)
        return body

    # -- the flow ---------------------------------------------------------------------------------------------

    def start(self, purpose: str, *, actor: str, account_id: int | None = None, strong: bool = False) -> Started:
        """Open a flow and return where to send the browser (and the binding token for its cookie). A step-up, or
        ``strong`` (a breach-flagged person starting again), asks ``oidc_acr_strong``; otherwise ``oidc_acr``."""
        from authlib.common.security import generate_token  # type: ignore[import-untyped]
        from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]

        if purpose not in (ENROL, STEP_UP, SIGN_IN):
            raise ValueError(f"unknown provider login purpose {purpose!r}")
        metadata = self.metadata()
        acr = self.settings.oidc_acr_strong if purpose == STEP_UP or strong else self.settings.oidc_acr
        state, nonce, verifier, binding = (generate_token(43) for _ in range(4))
        now = _now()
        flow = OidcFlow(
            state_hash=_digest(state),
            binding_hash=_digest(binding),
            nonce_hash=_digest(nonce),
            code_verifier=verifier,
            purpose=purpose,
            acr_wanted=acr,
            account_id=account_id,
            created_at=now,
            expires_at=now + timedelta(minutes=self.settings.oidc_flow_minutes),
        )
        self.session.add(flow)
        # Flows are kept a day (the step-up window and the records' references need far less), then dropped.
        self.session.execute(
            delete(OidcFlow).where(OidcFlow.created_at < now - timedelta(hours=self.settings.oidc_flow_retention_hours))
        )
        self.session.flush()
        query = {
            "response_type": "code",
            "client_id": self.settings.oidc_client_id,
            "redirect_uri": self.settings.oidc_redirect_uri,
            "scope": self.settings.oidc_scopes,
            "state": state,
            "nonce": nonce,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
            "acr_values": acr,
            "prompt": "login consent",
        }
        record(self.session, actor=actor, role="citizen" if account_id else None, action="oidc.start",
               object=f"oidc_flow:{flow.id}", detail={"purpose": purpose, "acr_values": acr})  # fmt: skip
        return Started(metadata["authorization_endpoint"] + "?" + urlencode(query), binding)

    def _consume(self, state: str, binding: str) -> OidcFlow:
        """The flow of this state, consumed now (one conditional UPDATE: a second callback finds it used)."""
        now = _now()
        flow = self.session.scalars(select(OidcFlow).where(OidcFlow.state_hash == _digest(state))).first()
        if flow is None:
            raise OidcRefused("flow", "unknown state")
        claimed = self.session.execute(
            update(OidcFlow)
            .where(
                OidcFlow.id == flow.id,
                OidcFlow.consumed_at.is_(None),
                OidcFlow.expires_at > now,
                OidcFlow.binding_hash == _digest(binding),
            )
            .values(consumed_at=now, code_verifier=None)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            self.session.refresh(flow)
            if flow.consumed_at is not None:
                raise OidcRefused("flow", "state already used (replayed callback)", flow.id)
            if _aware(flow.expires_at) <= now:
                raise OidcRefused("flow", "flow expired", flow.id)
            raise OidcRefused("flow", "state from another browser (binding cookie missing or wrong)", flow.id)
        self.session.refresh(flow)
        return flow

    def finish(
        self, *, state: str, code: str, error: str, binding: str, actor: str, device: str | None = None
    ) -> Vouched:
        """Take the provider's callback; raises :class:`OidcRefused` (recorded by the caller's act) on any failure."""
        if not state:
            raise OidcRefused("flow", "callback without state")
        # The verifier is read before the consuming UPDATE erases it.
        row = self.session.scalars(select(OidcFlow).where(OidcFlow.state_hash == _digest(state))).first()
        verifier = row.code_verifier if row is not None else None
        flow = self._consume(state, binding)
        # The flow is used up whatever happens next: commit that first, so a failure below cannot free it again.
        self.session.commit()
        try:
            return self._vouch(flow, code=code, error=error, verifier=verifier or "", actor=actor, device=device)
        except OidcRefused as exc:
            exc.flow_id, exc.purpose = flow.id, flow.purpose
            raise

    def _vouch(
        self, flow: OidcFlow, *, code: str, error: str, verifier: str, actor: str, device: str | None
    ) -> Vouched:
        if error:  # e.g. access_denied: the person cancelled at the provider (the code is the protocol's, not data)
            code_name = "".join(c for c in error[:40] if c.isalnum() or c == "_")
            raise OidcRefused("cancelled", f"the provider returned an error instead of a code ({code_name})")
        if not code or not verifier:
            raise OidcRefused("provider", "callback without code")
        metadata = self.metadata()
        tokens = self._exchange(metadata, code, verifier)
        claims = self._checked_id_token(metadata, tokens, flow)
        acr = str(claims["acr"])
        userinfo = self._userinfo(metadata, tokens["access_token"])
        if userinfo.get("sub") != claims.get("sub"):
            raise OidcRefused("provider", "userinfo names another subject than the ID token")
        found = self._match(userinfo)
        token = None
        if flow.purpose == STEP_UP:
            account = self.session.get(Account, flow.account_id) if flow.account_id is not None else None
            if account is None or account.person_index is None or found != [account.person_index]:
                raise OidcRefused("other_person", "the provider vouched for another person than the account's")
        elif flow.purpose == SIGN_IN:
            if len(found) != 1:
                raise OidcRefused("no_match", "no single person of the vault has this identity pivot")
            self._check_strong(found[0], acr)
            token = self._open_session(flow, found[0], acr, device)
        else:
            if len(found) != 1:
                raise OidcRefused("no_match", "no single person of the vault has this identity pivot")
            self._check_strong(found[0], acr)
        flow.vouched_at = _now()
        flow.acr = acr
        flow.person_index = found[0]
        # A step-up is the account's act (its session cookie does not come with the provider's cross-site redirect).
        actor = f"account:{flow.account_id}" if flow.account_id is not None else actor
        record(self.session, actor=actor, role="citizen" if flow.account_id else None, action="oidc.callback",
               object=f"oidc_flow:{flow.id}", detail={"purpose": flow.purpose, "acr": acr})  # fmt: skip
        return Vouched(flow.purpose, acr, token)

    def _check_strong(self, person_index: bytes, acr: str) -> None:
        """The step-up rule of the citizens' service (``Citizens.check_strong``): a person named in a breach needs
        ``oidc_acr_strong`` or above."""
        from hygie.governance.citizens import Citizens

        try:
            Citizens(self.hub, self.session).check_strong(person_index, via="oidc", acr=acr)
        except Denied:
            raise OidcRefused("strong_needed", "person named in a breach: the strong level is required") from None

    def _open_session(self, flow: OidcFlow, person_index: bytes, acr: str, device: str | None) -> str:
        """A provider sign-in: a session for the active citizen account of this person (the provider's login, at
        the level the person's breach flag requires, stands for the password and the device check)."""
        from hygie.governance.accounts import Status, new_session

        account = self.session.scalars(select(Account).where(Account.person_index == person_index)).first()
        if account is None or account.disabled or account.status != Status.ACTIVE or account.role != "citizen":
            raise OidcRefused("no_account", "no active citizen account for this person")
        flow.account_id = account.id
        token, auth = new_session(self.session, self.settings, account.id, _now())
        if device:  # this browser is now known for the account (a flagged person's later password sign-ins)
            from hygie.governance.letters import trust_device

            trust_device(self.session, account.id, device, "oidc")
        record(self.session, actor=f"account:{account.id}", role=account.role, action="auth.login",
               detail={"session": auth.id, "via": "oidc", "acr": acr})  # fmt: skip
        return token

    def _exchange(self, metadata: dict[str, Any], code: str, verifier: str) -> dict[str, Any]:
        import httpx

        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.settings.oidc_redirect_uri,
            "code_verifier": verifier,
        }
        try:
            with self._client() as client:
                response = client.post(
                    metadata["token_endpoint"], data=data, auth=(self.settings.oidc_client_id, self._secret())
                )
        except httpx.HTTPError:
            raise OidcUnavailable("the identity provider cannot be reached") from None
        if response.status_code in (400, 401):
            raise OidcRefused("provider", "the token endpoint refused the code")
        if response.status_code != 200:
            raise OidcUnavailable(f"the identity provider's token endpoint answered {response.status_code}")
        try:
            tokens = response.json()
        except ValueError:
            raise OidcUnavailable("the token endpoint's answer is not JSON") from None
        if not isinstance(tokens, dict) or not all(
            isinstance(tokens.get(k), str) for k in ("id_token", "access_token")
        ):
            raise OidcRefused("provider", "the token endpoint gave no ID token or access token")
        return tokens

    def _checked_id_token(self, metadata: dict[str, Any], tokens: dict[str, Any], flow: OidcFlow) -> dict[str, Any]:
        from authlib.oidc.core import CodeIDToken  # type: ignore[import-untyped]
        from joserfc import jwt
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet

        algorithms = signing_algorithms(metadata)
        if not algorithms:  # never an empty list: joserfc would fall back to its defaults, HS256 among them
            raise OidcUnavailable(f"the provider signs ID tokens with none of {', '.join(ALGORITHMS)}")
        id_token = tokens["id_token"]
        decoded = None
        for refresh in (False, True):  # a second try with the keys fetched again (the provider rotated them)
            try:
                keys = KeySet.import_key_set(self._keys(refresh))  # type: ignore[arg-type]
                decoded = jwt.decode(id_token, keys, algorithms=algorithms)
                break
            except (JoseError, ValueError) as exc:
                failure = type(exc).__name__
        if decoded is None:
            raise OidcRefused("provider", f"ID token signature not verified ({failure})")
        order = self.settings.oidc_acr_order
        strong_enough = order[order.index(flow.acr_wanted) :] if flow.acr_wanted in order else [flow.acr_wanted]
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            options={
                "iss": {"essential": True, "value": self.issuer},
                "aud": {"essential": True, "value": self.settings.oidc_client_id},
                "sub": {"essential": True},
                "exp": {"essential": True},
                "iat": {"essential": True},
                "nonce": {"essential": True},
                "acr": {"essential": True, "values": strong_enough},
            },
            params={"client_id": self.settings.oidc_client_id, "access_token": tokens["access_token"]},
        )
        try:
            claims.validate(leeway=self.settings.oidc_clock_skew_seconds)
        except JoseError as exc:
            claim = getattr(exc, "claim", None) or type(exc).__name__
            kind = "level" if claim == "acr" else "provider"
            raise OidcRefused(kind, f"ID token claim refused: {claim}") from None
        iat = claims.get("iat")
        if not isinstance(iat, int | float) or iat > time.time() + self.settings.oidc_clock_skew_seconds:
            raise OidcRefused("provider", "ID token claim refused: iat in the future")
        if iat < _aware(flow.created_at).timestamp() - self.settings.oidc_clock_skew_seconds:
            raise OidcRefused("provider", "ID token claim refused: iat before the login started")
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not secrets.compare_digest(_digest(nonce), flow.nonce_hash):
            raise OidcRefused("provider", "ID token claim refused: nonce")
        if not isinstance(claims.get("acr"), str):  # a list holding an accepted level passes the library's check
            raise OidcRefused("level", "ID token claim refused: acr (not one level)")
        return dict(claims)

    def _userinfo(self, metadata: dict[str, Any], access_token: str) -> dict[str, Any]:
        return self._get_json(metadata["userinfo_endpoint"], headers={"Authorization": f"Bearer {access_token}"})

    def _match(self, userinfo: dict[str, Any]) -> list[bytes]:
        pivot = pivots.pivot_of_claims(userinfo)
        if pivot is None:
            return []
        vault = self.hub.vault(self.session)
        try:
            return pivots.candidates(self.session, self.hub.custody, vault, pivot)
        except pivots.PivotIndexIncomplete as exc:
            raise OidcUnavailable(str(exc)) from None

    # -- enrolment once vouched -------------------------------------------------------------------------------

    def enrol(self, *, binding: str, username: str, password: str, device: str | None = None) -> NewAccount:
        """Open the account of the person the provider vouched for in this browser (one account per flow); the
        browser's ``device`` token becomes a known device of the account."""
        from hygie.governance.citizens import Citizens
        from hygie.governance.letters import trust_device

        flow = _pending(self.session, self.settings, binding)
        if flow is None or flow.person_index is None:
            raise OidcRefused("flow", "no provider login vouched for a person in this browser (or it expired)")
        self._check_strong(flow.person_index, flow.acr or "")
        created = Citizens(self.hub, self.session).open_account(
            flow.person_index, username=username, password=password, via="oidc"
        )
        if device:
            trust_device(self.session, created.account.id, device, "oidc")
        flow.enrolled_at = _now()
        record(self.session, actor=f"account:{created.account.id}", role="citizen", action="oidc.enrol",
               object=f"oidc_flow:{flow.id}", detail={"acr": flow.acr})  # fmt: skip
        return created


def _pending(session: Session, settings: Settings, binding: str) -> OidcFlow | None:
    """The enrolment vouched for in this browser, still open (not enrolled, within ``oidc_enrol_minutes``)."""
    if not binding:
        return None
    since = _now() - timedelta(minutes=settings.oidc_enrol_minutes)
    return session.scalars(
        select(OidcFlow)
        .where(
            OidcFlow.binding_hash == _digest(binding),
            OidcFlow.purpose == ENROL,
            OidcFlow.vouched_at.is_not(None),
            OidcFlow.enrolled_at.is_(None),
            OidcFlow.vouched_at > since,
        )
        .order_by(OidcFlow.id.desc())
        .limit(1)
    ).first()
