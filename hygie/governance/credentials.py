# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Passwords (Argon2id), second factors (TOTP, RFC 6238) and bearer tokens, all through ``cryptography``.

Tokens are 256-bit random values: only their SHA-256 is stored, which is safe for high-entropy secrets (unlike
passwords, they cannot be guessed, so no slow hash is needed) and lets a token be found in one index lookup.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from cryptography.exceptions import InvalidKey, InvalidSignature
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.twofactor import InvalidToken
from cryptography.hazmat.primitives.twofactor.totp import TOTP

TOTP_DIGITS = 6
TOTP_STEP = 30
TOTP_WINDOW = 1
"""Codes of the previous and next 30-second step are accepted too (clock drift)."""

SESSION_PREFIX = "hs_"
TOKEN_PREFIX = "ht_"  # noqa: S105  (a prefix, not a secret)


def hash_password(password: str, *, memory_kib: int, iterations: int) -> str:
    kdf = Argon2id(salt=secrets.token_bytes(16), length=32, iterations=iterations, lanes=1, memory_cost=memory_kib)
    return kdf.derive_phc_encoded(password.encode("utf-8"))


def check_password(password: str, encoded: str) -> bool:
    try:
        Argon2id.verify_phc_encoded(password.encode("utf-8"), encoded)
    except (InvalidKey, InvalidSignature, ValueError):
        return False
    return True


def new_totp_secret() -> bytes:
    return secrets.token_bytes(20)


def _totp(secret: bytes) -> TOTP:
    # SHA-1 because RFC 6238 authenticator apps use it; HMAC-SHA-1 is not affected by SHA-1 collisions.
    return TOTP(secret, TOTP_DIGITS, SHA1(), TOTP_STEP, enforce_key_length=True)  # noqa: S303


def totp_code(secret: bytes, at: float | None = None) -> str:
    return _totp(secret).generate(int(at if at is not None else time.time())).decode("ascii")


def totp_step(secret: bytes, code: str, at: float | None = None) -> int | None:
    """The time step (RFC 6238 counter) whose code ``code`` is, within the accepted window; None if none.

    The caller accepts a step once per account (``Account.totp_last_step``): a code seen once is spent.
    """
    now = int(at if at is not None else time.time())
    if not code.isascii() or not code.isdigit() or len(code) != TOTP_DIGITS:
        return None
    totp = _totp(secret)
    for offset in range(-TOTP_WINDOW, TOTP_WINDOW + 1):
        moment = now + offset * TOTP_STEP
        try:
            totp.verify(code.encode("ascii"), moment)
        except InvalidToken:
            continue
        return moment // TOTP_STEP
    return None


def check_totp(secret: bytes, code: str, at: float | None = None) -> bool:
    """Whether ``code`` is valid now (says nothing of replay: sign-in uses :func:`totp_step`)."""
    return totp_step(secret, code, at) is not None


def provisioning_uri(secret: bytes, username: str, issuer: str = "Hygie") -> str:
    return _totp(secret).get_provisioning_uri(username, issuer)


def totp_secret_text(secret: bytes) -> str:
    return base64.b32encode(secret).decode("ascii")


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
