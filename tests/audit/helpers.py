# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Shared helpers for the transparency-log tests."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import text

from hygie.audit import record_now
from hygie.hub import Hub


def fill(hub: Hub, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        record_now(
            hub.session,
            actor=f"account:{i}",
            role="analyst",
            action="query.run",
            project_id=i % 3,
            detail={"rows": i, "needle": f"needle-{i:05d}"},
        )


def drop_guards(hub: Hub, table: str) -> None:
    """What an attacker with database access does first."""
    with hub.engine.begin() as conn:
        if hub.engine.dialect.name == "postgresql":
            conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}"))
            conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}"))
        else:
            conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_update"))
            conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_delete"))


def env_for(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    s = hub.settings
    monkeypatch.setenv("HYGIE_DATA_DIR", str(s.data_dir))
    assert s.key_passphrase is not None
    monkeypatch.setenv("HYGIE_KEY_PASSPHRASE", s.key_passphrase.get_secret_value())
    monkeypatch.setenv("HYGIE_KDF_MEMORY_KIB", str(s.kdf_memory_kib))
    monkeypatch.setenv("HYGIE_KDF_ITERATIONS", str(s.kdf_iterations))
    monkeypatch.setenv("HYGIE_KDF_LANES", str(s.kdf_lanes))
    if s.database_url:
        monkeypatch.setenv("HYGIE_DATABASE_URL", s.database_url)


def strict_b64(text: str) -> bytes:
    blob = base64.b64decode(text, validate=True)
    assert base64.b64encode(blob).decode() == text, "non-canonical base64"
    return blob


def check_note(note: str, verifier_key: str) -> tuple[str, int, bytes]:
    """Verify a C2SP signed note from the specs alone; returns (origin, size, root)."""
    name, key_hash_hex, key_b64 = verifier_key.split("+", 2)
    blob = strict_b64(key_b64)
    assert blob[0] == 1 and len(blob) == 33
    assert hashlib.sha256(name.encode() + b"\n" + blob).digest()[:4].hex() == key_hash_hex
    body, signatures = note.split("\n\n", 1)
    body += "\n"
    lines = signatures.rstrip("\n").split("\n")
    assert len(lines) == 1
    dash, signer, sig_b64 = lines[0].split(" ")
    assert dash == "\u2014" and signer == name
    sig = strict_b64(sig_b64)
    assert sig[:4].hex() == key_hash_hex
    Ed25519PublicKey.from_public_bytes(blob[1:]).verify(sig[4:], body.encode())
    origin, size, root, end = body.split("\n")
    assert end == "" and origin == name
    return origin, int(size), strict_b64(root)
