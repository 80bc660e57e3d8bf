# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The anonymous "am I in it?" check: RFC 9497 conformance, answers, rate limits, and what the server sees."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from typing import Any

import pytest
from sqlalchemy import select
from voprf import ristretto

from hygie.audit import AuditEvent
from hygie.breach import oprf, ratelimit
from hygie.breach.check_client import CheckRefused, am_i_in_it
from hygie.breach.models import BreachCheckTag
from hygie.breach.ratelimit import RateLimited, RateLimiter
from hygie.governance import limits
from hygie.identity.nir import nir_key
from tests.portal.world import World, notify_first_people

# RFC 9497, Appendix A.1.2: OPRF(ristretto255, SHA-512), mode VOPRF.
SEED = bytes.fromhex("a3" * 32)
KEY_INFO = bytes.fromhex("74657374206b6579")
PK_SM = "c803e2cc6b05fc15064549b5920659ca4a77b2cca6f04f6b357009335476ad4e"
VECTORS = [
    (
        "00",
        "863f330cc1a1259ed5a5998a23acfd37fb4351a793a5b3c090b642ddc439b945",
        "aa8fa048764d5623868679402ff6108d2521884fa138cd7f9c7669a9a014267e",
        "b58cfbe118e0cb94d79b5fd6a6dafb98764dff49c14e1770b566e42402da1a7d"
        "a4d8527693914139caee5bd03903af43a491351d23b430948dd50cde10d32b3c",
    ),
    (
        "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
        "cc0b2a350101881d8a4cba4c80241d74fb7dcbfde4a61fde2f91443c2bf9ef0c",
        "60a59a57208d48aca71e9e850d22674b611f752bed48b36f7a91b372bd7ad468",
        "8a9a2f3c7f085b65933594309041fc1898d42d0858e59f90814ae90571a6df60"
        "356f4610bf816f27afdd84f47719e480906d27ecd994985890e5f539e7ea74b6",
    ),
]


@pytest.mark.parametrize(("message", "blinded", "evaluated", "output"), VECTORS)
def test_voprf_package_meets_rfc9497_vectors(message: str, blinded: str, evaluated: str, output: str) -> None:
    server = ristretto.Evaluator.from_seed(SEED, KEY_INFO)  # DeriveKeyPair
    assert server.public_key.serialize().hex() == PK_SM
    assert server.evaluate_known_input(bytes.fromhex(message)).hex() == output  # Evaluate
    # BlindEvaluate on the RFC's blinded element: the evaluated element is deterministic (the proof is not).
    answer = server.evaluate(ristretto.BlindedInput.deserialize(bytes.fromhex(blinded))).serialize()
    assert answer[-32:].hex() == evaluated  # serialised as proof (c, s) then the evaluated element
    # A client with a random blind reaches the same output, verifying the proof against the public key...
    client, request = ristretto.Client.blind(bytes.fromhex(message))
    assert client.finalize(server.evaluate(request), server.public_key).hex() == output
    # ...and refuses an answer made with another key.
    client, request = ristretto.Client.blind(bytes.fromhex(message))
    other = ristretto.Evaluator.from_seed(bytes(32), KEY_INFO)
    with pytest.raises(Exception):
        client.finalize(other.evaluate(request), server.public_key)


def fresh_limits(world: World, limiter: RateLimiter) -> None:
    """Give the portal these limits, counted from zero (the counts live in the hub's database)."""
    for bucket in (ratelimit.CLIENT, ratelimit.EVERYONE):
        limits.forget(world.hub, bucket)
    world.client.app.state.breach_limiter = limiter  # type: ignore[attr-defined]


def test_rate_limiter_windows(shared_world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    hub, now = shared_world.hub, [1_900_000_000.0]
    monkeypatch.setattr(limits, "clock", lambda: now[0])
    fresh_limits(shared_world, RateLimiter(100, 3600, 1000, 60))
    limiter = RateLimiter(per_client=2, per_client_seconds=3600, overall=3, overall_seconds=60)
    limiter.hit(hub, "a")
    now[0] += 1
    limiter.hit(hub, "a")
    now[0] += 1
    with pytest.raises(RateLimited) as exc:
        limiter.hit(hub, "a")
    assert 3590 <= exc.value.retry_after <= 3600
    now[0] += 1
    limiter.hit(hub, "b")
    now[0] += 1
    with pytest.raises(RateLimited):  # the global window is full, whoever asks
        limiter.hit(hub, "c")
    now[0] += 60
    limiter.hit(hub, "c")  # and "c" was not charged for the refused try
    limiter.hit(hub, "c")
    fresh_limits(shared_world, RateLimiter(100, 3600, 1000, 60))


@pytest.fixture(scope="module")
def notified(shared_world: World) -> list[dict[str, str]]:
    """An incident notified for the first 20 people of the population."""
    return notify_first_people(shared_world, "c")


def test_am_i_in_it_answers_without_telling_the_server(
    shared_world: World, notified: list[dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    sent: list[bytes] = []

    def keep(request: Any) -> None:
        sent.append(request.url.raw_path + request.content)

    shared_world.client.event_hooks["request"].append(keep)
    caplog.set_level(logging.DEBUG)
    try:
        inside, outside = notified[3]["BEN_NIR"], notified[250]["BEN_NIR"]
        assert am_i_in_it(shared_world.client, inside) is True
        assert am_i_in_it(shared_world.client, outside) is False
    finally:
        shared_world.client.event_hooks["request"].remove(keep)
        fresh_limits(shared_world, RateLimiter(100, 3600, 1000, 60))

    # What an attacker holding every request and log line can test against guessed NIRs: every unkeyed function
    # of the NIR (plain hashes, their hex and base64 prefixes), over the true NIR and its neighbours.
    with shared_world.hub.session() as session:
        records = " ".join(json.dumps(e.detail) + (e.object or "") for e in session.scalars(select(AuditEvent)))
    seen = b" ".join(sent) + caplog.text.encode() + records.encode()
    for nir in (inside, outside):
        for digest in (hashlib.sha256, hashlib.sha1, hashlib.md5, hashlib.sha512):
            for data in (nir.encode(), nir[:13].encode(), oprf.nir_input(nir)):
                h = digest(data).digest()
                for prefix in (h.hex()[:8], base64.b64encode(h).decode()[:8], base64.urlsafe_b64encode(h).decode()[:8]):
                    assert prefix.encode() not in seen
        assert nir.encode() not in seen and nir[:13].encode() not in seen
        assert hmac.new(b"", nir.encode(), "sha256").hexdigest()[:8].encode() not in seen
    # The lookup's prefix is 8 bits of a hash of OPRF(NIR): without the key, every candidate NIR is as likely.
    lookups = [json.loads(s[s.index(b"{") :]) for s in sent if s.startswith(b"/breach-check/lookup")]
    assert all(set(body) == {"attempt", "prefix"} and 0 <= body["prefix"] < 256 for body in lookups)


def test_server_keeps_no_unkeyed_function_of_a_nir(shared_world: World, notified: list[dict[str, str]]) -> None:
    with shared_world.hub.session() as session:
        tags = set(session.scalars(select(BreachCheckTag.tag)))
    assert len(tags) >= 20
    for p in notified[:20]:
        nir = p["BEN_NIR"]
        for data in (nir.encode(), oprf.nir_input(nir)):
            assert hashlib.sha256(data).digest()[:16] not in tags
            assert oprf.tag_of(data) not in tags  # the tag needs the OPRF output, which needs the server's key


def test_rate_limit_refuses_with_retry_after(shared_world: World, notified: list[dict[str, str]]) -> None:
    settings = shared_world.hub.settings
    fresh_limits(
        shared_world,
        RateLimiter(settings.breach_check_per_ip_per_hour, 3600, settings.breach_check_global_per_minute, 60),
    )
    nir = notified[0]["BEN_NIR"]
    for _ in range(settings.breach_check_per_ip_per_hour):
        am_i_in_it(shared_world.client, nir)
    with pytest.raises(CheckRefused) as exc:
        am_i_in_it(shared_world.client, nir)
    assert exc.value.status == 429 and exc.value.retry_after and exc.value.retry_after > 0
    # An enumeration by the same client stops there: the next candidate NIRs get the same answer.
    candidate = nir[:10] + "001"
    with pytest.raises(CheckRefused):
        am_i_in_it(shared_world.client, candidate + nir_key(candidate))
    with shared_world.hub.session() as session:
        refused = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "breach.check.evaluate", AuditEvent.outcome == "denied")
        ).all()
    assert refused and all(e.detail.get("reason") == "rate limit" for e in refused)


def test_a_lookup_needs_a_fresh_evaluation(shared_world: World, notified: list[dict[str, str]]) -> None:
    fresh_limits(shared_world, RateLimiter(100, 3600, 1000, 60))
    r = shared_world.client.post("/breach-check/lookup", json={"attempt": "made-up", "prefix": 1})
    assert r.status_code == 401
    state = oprf.blind(notified[0]["BEN_NIR"])
    answer = shared_world.client.post(
        "/breach-check/evaluate", json={"blinded": base64.b64encode(state.message).decode()}
    ).json()
    assert shared_world.client.post("/breach-check/lookup", json={"attempt": answer["attempt"], "prefix": 0}).is_success
    again = shared_world.client.post("/breach-check/lookup", json={"attempt": answer["attempt"], "prefix": 1})
    assert again.status_code == 401  # one lookup per evaluation: buckets cannot be walked for free
