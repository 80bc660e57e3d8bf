# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Metadata text sealed at rest: a column type that encrypts on write and decrypts on read (AES-256-GCM).

Free text that describes research or people (a project's justification) is not needed by any query, only shown:
it is stored as ``hygie-sealed:v1:`` + base64(nonce || ciphertext), with the table and column authenticated, so a
copy of the database (or of a database dump) does not show it. The key is derived from a custody key by HMAC (see
:meth:`hygie.hub.Hub._assemble`), attached to the engine's dialect, so each hub's engine seals with its own key.
Values written before sealing existed (no prefix) are read as they are, and sealed when next written.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import JSON, Text
from sqlalchemy.types import TypeDecorator

PREFIX = "hygie-sealed:v1:"
NONCE_BYTES = 12


class SealingUnavailable(Exception):
    """Sealed metadata read or written through an engine that has no sealer (not opened through a hub)."""


class MetadataSealer:
    def __init__(self, derive_key: Callable[[], bytes]) -> None:
        self._derive_key = derive_key
        self._aead: AESGCM | None = None

    def _cipher(self) -> AESGCM:
        if self._aead is None:
            self._aead = AESGCM(self._derive_key())
        return self._aead

    def seal(self, text: str, context: bytes) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._cipher().encrypt(nonce, text.encode("utf-8"), context)
        return PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, stored: str, context: bytes) -> str:
        raw = base64.b64decode(stored[len(PREFIX) :])
        try:
            return self._cipher().decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context).decode("utf-8")
        except InvalidTag:
            raise SealingUnavailable(f"a sealed {context.decode()} value does not open with this hub's key") from None


def attach(engine: Any, sealer: MetadataSealer) -> None:
    engine.dialect.hygie_sealer = sealer


class SealedText(TypeDecorator[str]):
    impl = Text
    cache_ok = True

    def __init__(self, context: str) -> None:
        super().__init__()
        self.context = context

    def _sealer(self, dialect: Any) -> MetadataSealer:
        sealer = getattr(dialect, "hygie_sealer", None)
        if sealer is None:
            raise SealingUnavailable(f"{self.context} is sealed at rest: open the database through a hub")
        return sealer  # type: ignore[no-any-return]

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        if value is None:
            return None
        return self._sealer(dialect).seal(value, self.context.encode())

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        if value is None or not value.startswith(PREFIX):
            return value
        return self._sealer(dialect).open(value, self.context.encode())


class SealedJSON(TypeDecorator[Any]):
    """A JSON value sealed at rest, stored as the JSON object ``{"sealed": "hygie-sealed:v1:..."}`` (so the column
    keeps its JSON type on both databases and needs no migration); values written before sealing are read as they are.
    """

    impl = JSON
    cache_ok = True

    def __init__(self, context: str) -> None:
        super().__init__()
        self.context = context
        self._text = SealedText(context)

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        return {"sealed": self._text.process_bind_param(json.dumps(value, sort_keys=True), dialect)}

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if isinstance(value, dict) and set(value) == {"sealed"} and isinstance(value["sealed"], str):
            return json.loads(self._text.process_result_value(value["sealed"], dialect) or "null")
        return value
