# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The signed-note parser accepts exactly one spelling of each signature."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hygie.audit.note import Checkpoint, NoteError, open_note, sign, verifier_key

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def test_a_signature_respelled_in_its_unused_bits_is_refused() -> None:
    key = Ed25519PrivateKey.generate()
    vkey = verifier_key("hygie.test/log", key.public_key().public_bytes_raw())
    note = sign(Checkpoint("hygie.test/log", 3, bytes(32)), "hygie.test/log", key)
    assert open_note(note, vkey).size == 3
    sig = note.rstrip("\n").rsplit(" ", 1)[1]
    # 68 bytes encode to 92 characters ending in one "=": the last symbol carries 2 unused bits.
    assert sig.endswith("=") and not sig.endswith("==")
    last = sig[-2]
    respelled = _B64[_B64.index(last) ^ 1]
    twin = sig[:-2] + respelled + "="
    assert base64.b64decode(twin) == base64.b64decode(sig)  # the same bytes, another spelling
    with pytest.raises(NoteError):
        open_note(note.replace(sig, twin), vkey)
