"""Checkpoints as C2SP signed notes (c2sp.org/tlog-checkpoint, c2sp.org/signed-note), Ed25519 keys.

A checkpoint body is three lines, each ending in a newline::

    <origin>
    <tree size, decimal>
    <root hash, standard base64>

The note is the body, an empty line, then one signature line per signer:
``— <key name> <base64(key hash (4 bytes) || Ed25519 signature of the body)>``, where the key hash is the first
four bytes of SHA-256(key name || 0x0A || 0x01 || public key) (0x01 = the Ed25519 signature type).
A verifier key is written ``<name>+<key hash, 8 hex digits>+<base64(0x01 || public key)>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ED25519 = b"\x01"
_DASH = "\u2014"  # the em dash that opens every signature line


class NoteError(ValueError):
    """A note or a key that does not parse, or whose signature does not verify."""


def key_hash(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + public_key).digest()[:4]


def _b64(text: str) -> bytes:
    """Strict base64: a string that is not the canonical encoding of its bytes is refused, so one
    signature or key has exactly one spelling (unused trailing bits could otherwise vary)."""
    blob = base64.b64decode(text, validate=True)
    if base64.b64encode(blob).decode() != text:
        raise binascii.Error("non-canonical base64")
    return blob


def verifier_key(name: str, public_key: bytes) -> str:
    return f"{name}+{key_hash(name, public_key).hex()}+{base64.b64encode(ED25519 + public_key).decode()}"


def parse_verifier_key(text: str) -> tuple[str, bytes]:
    """``(name, raw Ed25519 public key)`` of a verifier key; checks its declared hash."""
    try:
        name, hash_hex, encoded = text.strip().split("+", 2)  # base64 may hold "+", names never do
        blob = _b64(encoded)
    except (ValueError, binascii.Error) as exc:
        raise NoteError("malformed verifier key") from exc
    if blob[:1] != ED25519 or len(blob) != 33:
        raise NoteError("not an Ed25519 verifier key")
    if key_hash(name, blob[1:]).hex() != hash_hex:
        raise NoteError("verifier key hash does not match its name and key")
    return name, blob[1:]


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


def open_note(note: str, verifier: str) -> Checkpoint:
    """The checkpoint a note carries, once a signature by ``verifier`` checks; :class:`NoteError` otherwise."""
    name, public = parse_verifier_key(verifier)
    body, sep, signatures = note.partition("\n\n")
    if not sep or not signatures.endswith("\n"):
        raise NoteError("a note is a body, an empty line and signature lines")
    body += "\n"
    wanted = key_hash(name, public)
    verified = False
    for line in signatures[:-1].split("\n"):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _DASH:
            raise NoteError("malformed signature line")
        try:
            blob = _b64(parts[2])
        except binascii.Error as exc:
            raise NoteError("malformed signature") from exc
        if parts[1] != name or blob[:4] != wanted:
            continue  # another signer (a witness cosignature, say)
        try:
            Ed25519PublicKey.from_public_bytes(public).verify(blob[4:], body.encode())
        except InvalidSignature as exc:
            raise NoteError(f"signature by {name} does not verify") from exc
        verified = True
    if not verified:
        raise NoteError(f"no signature by {name}")
    return parse_body(body)


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
