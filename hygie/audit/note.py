# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Checkpoints as C2SP signed notes (c2sp.org/tlog-checkpoint, c2sp.org/signed-note), Ed25519 keys.

A checkpoint body is three lines, each ending in a newline::

    <origin>
    <tree size, decimal>
    <root hash, standard base64>

The note is the body, an empty line, then one signature line per signer:
``— <key name> <base64(key hash (4 bytes) || Ed25519 signature of the body)>``, where the key hash is the first
four bytes of SHA-256(key name || 0x0A || 0x01 || public key) (0x01 = the Ed25519 signature type).
A verifier key is written ``<name>+<key hash, 8 hex digits>+<base64(0x01 || public key)>``.

Witness cosignatures (c2sp.org/tlog-cosignature, Ed25519 ``cosignature/v1``) are further signature lines on the
same note: ``— <witness name> <base64(key ID (4 bytes) || timestamp (8 bytes, big-endian) || signature)>``, key ID
= SHA-256(name || 0x0A || 0x04 || public key)[:4], signing ``cosignature/v1\ntime <unix seconds>\n`` followed by
the checkpoint body. A cosigner's verifier key is ``<name>+<key ID hex>+<base64(0x04 || public key)>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ED25519 = b"\x01"
COSIGNATURE_V1 = b"\x04"
"""Signature type of Ed25519 cosignature/v1 (c2sp.org/tlog-cosignature)."""
MAX_TIMESTAMP = 2**63 - 1
_DASH = "\u2014"  # the em dash that opens every signature line


class NoteError(ValueError):
    """A note or a key that does not parse, or whose signature does not verify."""


def key_hash(name: str, public_key: bytes, kind: bytes = ED25519) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + kind + public_key).digest()[:4]


def _b64(text: str) -> bytes:
    """Strict base64: a string that is not the canonical encoding of its bytes is refused, so one
    signature or key has exactly one spelling (unused trailing bits could otherwise vary)."""
    blob = base64.b64decode(text, validate=True)
    if base64.b64encode(blob).decode() != text:
        raise binascii.Error("non-canonical base64")
    return blob


def verifier_key(name: str, public_key: bytes, kind: bytes = ED25519) -> str:
    return f"{name}+{key_hash(name, public_key, kind).hex()}+{base64.b64encode(kind + public_key).decode()}"


def parse_verifier_key(text: str, kind: bytes = ED25519) -> tuple[str, bytes]:
    """``(name, raw Ed25519 public key)`` of a verifier key of this signature type; checks its declared hash."""
    try:
        name, hash_hex, encoded = text.strip().split("+", 2)  # base64 may hold "+", names never do
        blob = _b64(encoded)
    except (ValueError, binascii.Error) as exc:
        raise NoteError("malformed verifier key") from exc
    if not name or any(c.isspace() for c in name):
        raise NoteError("malformed verifier key")
    if blob[:1] != kind or len(blob) != 33:
        what = "Ed25519 cosigner" if kind == COSIGNATURE_V1 else "Ed25519"
        raise NoteError(f"not an {what} verifier key")
    if key_hash(name, blob[1:], kind).hex() != hash_hex:
        raise NoteError("verifier key hash does not match its name and key")
    return name, blob[1:]


def cosigner_key(name: str, public_key: bytes) -> str:
    """A witness's verifier key (signature type 0x04, cosignature/v1)."""
    return verifier_key(name, public_key, COSIGNATURE_V1)


def parse_cosigner_key(text: str) -> tuple[str, bytes]:
    return parse_verifier_key(text, COSIGNATURE_V1)


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


def sign(checkpoint: Checkpoint, name: str, private_key: Ed25519PrivateKey) -> str:
    body = checkpoint.body()
    public = private_key.public_key().public_bytes_raw()
    signature = private_key.sign(body.encode())
    return f"{body}\n{_DASH} {name} {base64.b64encode(key_hash(name, public) + signature).decode()}\n"


def split_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """The body (with its final newline) and each signature line as ``(key name, decoded blob)``."""
    body, sep, signatures = note.partition("\n\n")
    if not sep or not signatures.endswith("\n"):
        raise NoteError("a note is a body, an empty line and signature lines")
    out = []
    for line in signatures[:-1].split("\n"):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _DASH or not parts[1]:
            raise NoteError("malformed signature line")
        try:
            blob = _b64(parts[2])
        except binascii.Error as exc:
            raise NoteError("malformed signature") from exc
        if len(blob) < 4:
            raise NoteError("malformed signature")
        out.append((parts[1], blob))
    return body + "\n", out


def signed_by(body: str, signatures: list[tuple[str, bytes]], verifier: str) -> bool:
    """Whether a signature line by ``verifier`` signs the body; one that claims its key and fails raises."""
    name, public = parse_verifier_key(verifier)
    wanted = key_hash(name, public)
    verified = False
    for signer, blob in signatures:
        if signer != name or blob[:4] != wanted:
            continue  # another signer (a witness cosignature, say)
        try:
            Ed25519PublicKey.from_public_bytes(public).verify(blob[4:], body.encode())
        except InvalidSignature as exc:
            raise NoteError(f"signature by {name} does not verify") from exc
        verified = True
    return verified


def open_note(note: str, verifier: str) -> Checkpoint:
    """The checkpoint a note carries, once a signature by ``verifier`` checks; :class:`NoteError` otherwise."""
    body, signatures = split_note(note)
    if not signed_by(body, signatures, verifier):
        raise NoteError(f"no signature by {parse_verifier_key(verifier)[0]}")
    return parse_body(body)


# -- cosignatures (c2sp.org/tlog-cosignature, Ed25519 cosignature/v1) -----------------------------------------


def cosignature_message(body: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


def cosign(body: str, name: str, private_key: Ed25519PrivateKey, timestamp: int) -> str:
    """One cosignature line (with its newline) over a checkpoint body, at ``timestamp`` (POSIX seconds)."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise ValueError("timestamp out of range")
    public = private_key.public_key().public_bytes_raw()
    signature = private_key.sign(cosignature_message(body, timestamp))
    blob = key_hash(name, public, COSIGNATURE_V1) + timestamp.to_bytes(8, "big") + signature
    return f"{_DASH} {name} {base64.b64encode(blob).decode()}\n"


@dataclass(frozen=True)
class Cosignature:
    name: str
    timestamp: int
    line: str
    """The signature line, with its newline."""


def cosignatures(note: str, cosigner_keys: list[str]) -> list[Cosignature]:
    """The cosignatures in a note that verify under one of ``cosigner_keys`` (one per key at most); lines of
    other keys are ignored, as the spec asks. A line that claims a given key and does not verify is ignored too
    (it counts for nothing)."""
    body, signatures = split_note(note)
    found: dict[str, Cosignature] = {}
    for text in cosigner_keys:
        name, public = parse_cosigner_key(text)
        wanted = key_hash(name, public, COSIGNATURE_V1)
        for signer, blob in signatures:
            if signer != name or blob[:4] != wanted or len(blob) != 4 + 8 + 64:
                continue
            timestamp = int.from_bytes(blob[4:12], "big")
            if timestamp > MAX_TIMESTAMP:
                continue
            try:
                Ed25519PublicKey.from_public_bytes(public).verify(blob[12:], cosignature_message(body, timestamp))
            except InvalidSignature:
                continue
            line = f"{_DASH} {name} {base64.b64encode(blob).decode()}\n"
            found.setdefault(text, Cosignature(name, timestamp, line))
    return list(found.values())


def parse_body(body: str) -> Checkpoint:
    lines = body.split("\n")
    if len(lines) < 4 or lines[-1] != "" or not lines[0]:
        raise NoteError("a checkpoint body is origin, size and root lines")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise NoteError("tree size is not a canonical decimal")
    try:
        root = _b64(root_text)
    except binascii.Error as exc:
        raise NoteError("root hash is not base64") from exc
    if len(root) != 32:
        raise NoteError("root hash is not 32 bytes")
    return Checkpoint(origin, int(size_text), root)
