# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The anonymous "am I in it?" check: a verifiable OPRF (RFC 9497, ristretto255-SHA512, mode VOPRF).

The ``voprf`` package (a binding of the Rust ``voprf`` crate) implements RFC 9497; the tests check it against
the RFC's test vectors (A.1.2: DeriveKeyPair, Evaluate, BlindEvaluate). Protocol, per attempt:

1. The client blinds its NIR and sends the blinded element (a uniformly random group element: it says
   nothing about the NIR, information-theoretically).
2. The server evaluates it blindly (rate-limited) with a proof that it used its published key, and hands
   back an attempt token good for one lookup.
3. The client unblinds (verifying the proof, so the server cannot single it out with another key) and gets
   y = OPRF(key, NIR). It derives tag = SHA-256(label | y)[:16] and sends only the first
   ``breach_check_prefix_bits`` bits of it, with the token.
4. The server answers with the tags of that bucket (about n / 2^bits of them); the client looks for its own.

Nothing published or sent can be tested against a guessed NIR without the server's key: each guess costs an
online, rate-limited evaluation. See docs/breach.md for the reasoning and the limits.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from voprf import ristretto

from hygie.breach.models import BreachOprfKey
from hygie.keys import KeyCustody, KeyPurpose

OPRF_KEY = "breach-oprf"
"""Wraps the seed of the anonymous check's OPRF key."""
SUITE = "ristretto255-SHA512"
_INFO = b"hygie/breach-check/v1"
_TAG_LABEL = b"hygie/breach-check-tag/v1|"
TAG_BYTES = 16


def tag_of(output: bytes) -> bytes:
    """The lookup tag of an OPRF output (what the server stores and the client compares)."""
    return hashlib.sha256(_TAG_LABEL + output).digest()[:TAG_BYTES]


def prefix_of(tag: bytes, bits: int) -> int:
    return int.from_bytes(tag[:4], "big") >> (32 - bits) if bits else 0


def evaluator(session: Session, custody: KeyCustody) -> ristretto.Evaluator:
    """The server's OPRF evaluator; its seed is created on first use and stored only wrapped by custody."""
    custody.ensure(OPRF_KEY, KeyPurpose.WRAP)
    row = session.scalars(select(BreachOprfKey).order_by(BreachOprfKey.id.desc()).limit(1)).first()
    if row is None:
        row = BreachOprfKey(wrapped_seed=custody.wrap(OPRF_KEY, secrets.token_bytes(32), _INFO),
                            created_at=datetime.now(UTC))  # fmt: skip
        session.add(row)
        session.flush()
    return ristretto.Evaluator.from_seed(custody.unwrap(OPRF_KEY, row.wrapped_seed, _INFO), _INFO)


def nir_input(nir: str) -> bytes:
    return b"hygie/nir|" + nir.encode("ascii")


@dataclass
class Blinded:
    """The client's state between its two requests (kept in the browser, never sent)."""

    client: ristretto.Client
    message: bytes


def blind(nir: str) -> Blinded:
    client, blinded = ristretto.Client.blind(nir_input(nir))
    return Blinded(client, blinded.serialize())


def finalize(state: Blinded, evaluated: bytes, public_key: bytes) -> bytes:
    """Unblind the server's answer, checking its proof against the published key (raises if it fails)."""
    return state.client.finalize(
        ristretto.VerifiableOutput.deserialize(evaluated), ristretto.PublicKey.deserialize(public_key)
    )
