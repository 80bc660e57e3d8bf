# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The relying party's refusals that need no provider to show: a provider offering only symmetric algorithms (the
JOSE library's defaults, HS256 among them, never take over), an ``acr`` sent as a list, and floods of starts or of
callbacks with made-up states from one address (tests/governance/test_oidc_limits.py)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from hygie.config import Settings
from hygie.governance import oidc
from hygie.governance.oidc import OidcFlow, OidcRefused, OidcUnavailable, RelyingParty
from hygie.hub import Hub

ISSUER = "https://idp.example"
SECRET = "the-client-secret-the-provider-and-hub-share-0123456789"


def party(tmp_settings: Settings) -> RelyingParty:
    hub = SimpleNamespace(settings=tmp_settings)
    return RelyingParty(cast(Hub, hub), cast(Any, None))


def settings() -> Settings:
    return Settings(oidc_issuer=ISSUER, oidc_client_id="hygie", oidc_client_secret=SECRET)  # type: ignore[arg-type]


def flow(nonce: str) -> OidcFlow:
    now = datetime.now(UTC)
    return OidcFlow(state_hash="s", binding_hash="b", nonce_hash=oidc._digest(nonce), purpose=oidc.ENROL,
                    acr_wanted="eidas1", created_at=now - timedelta(seconds=5),
                    expires_at=now + timedelta(minutes=5))  # fmt: skip


def claims(nonce: str, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": "hygie", "sub": "person-1", "exp": now + 60, "iat": now, "nonce": nonce} | extra


def test_a_provider_offering_no_asymmetric_algorithm_is_refused() -> None:
    rp = party(settings())
    assert oidc.signing_algorithms({}) == ["RS256"]
    assert oidc.signing_algorithms({"id_token_signing_alg_values_supported": ["HS256", "none"]}) == []
    # An ID token signed with the client secret (HS256), offered by a provider whose discovery lists only HS256:
    # before, ``algorithms`` was [] and joserfc checked it with its default set, HS256 included.
    forged = jwt.encode({"alg": "HS256"}, claims("n", acr="eidas2"), OctKey.import_key(SECRET))
    metadata = {"id_token_signing_alg_values_supported": ["HS256"]}
    rp._keys = lambda refresh: {"keys": [OctKey.import_key(SECRET).as_dict()]}  # type: ignore[method-assign]
    with pytest.raises(OidcUnavailable, match="none of"):
        rp._checked_id_token(metadata, {"id_token": forged, "access_token": "a"}, flow("n"))
    # And the discovery document that says so is refused at once (no login starts).
    document = {"issuer": ISSUER, "response_types_supported": ["code"], "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["HS256"]} | {
                    name: f"{ISSUER}/{name}" for name in ("authorization_endpoint", "token_endpoint", "jwks_uri",
                                                          "userinfo_endpoint")}  # fmt: skip
    rp._get_json = lambda url, **kwargs: document  # type: ignore[method-assign]
    oidc._CACHE.metadata.pop(ISSUER, None)
    with pytest.raises(OidcUnavailable):
        rp.metadata()


def test_an_acr_sent_as_a_list_is_refused() -> None:
    rp = party(settings())
    key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    rp._keys = lambda refresh: {"keys": [key.as_dict(private=False)]}  # type: ignore[method-assign]
    metadata = {"id_token_signing_alg_values_supported": ["RS256"]}

    def check(acr: Any) -> dict[str, Any]:
        token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims("n", acr=acr), key)
        return rp._checked_id_token(metadata, {"id_token": token, "access_token": "a"}, flow("n"))

    assert check("eidas2")["acr"] == "eidas2"  # the control: one level, accepted
    with pytest.raises(OidcRefused) as refused:
        check(["eidas2", "eidas1"])
    assert refused.value.kind == "level"
