# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The anonymous check's client, as the browser page runs it: the NIR never leaves this function.

Sent over the wire: a blinded element (uniformly random), then ``prefix_bits`` bits of a tag derived from
OPRF(server key, NIR). Nothing sent can be tested against a guessed NIR without the server's key.
"""

from __future__ import annotations

import base64

import httpx

from hygie.breach import oprf
from hygie.identity.nir import validate_nir


class CheckRefused(Exception):
    def __init__(self, status: int, retry_after: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def _ok(response: httpx.Response) -> httpx.Response:
    if response.status_code != 200:
        retry = response.headers.get("Retry-After")
        raise CheckRefused(response.status_code, int(retry) if retry else None, response.text)
    return response


def am_i_in_it(client: httpx.Client, nir: str) -> bool:
    """Whether this NIR is among the people of a notified breach, asking the server without telling it."""
    nir = validate_nir(nir)
    key = _ok(client.get("/breach-check/key")).json()
    state = oprf.blind(nir)
    answer = _ok(client.post("/breach-check/evaluate", json={"blinded": base64.b64encode(state.message).decode()}))
    evaluated = base64.b64decode(answer.json()["evaluated"])
    output = oprf.finalize(state, evaluated, base64.b64decode(key["public_key"]))
    tag = oprf.tag_of(output)
    prefix = oprf.prefix_of(tag, int(key["prefix_bits"]))
    found = _ok(client.post("/breach-check/lookup", json={"attempt": answer.json()["attempt"], "prefix": prefix}))
    return base64.b64encode(tag).decode() in set(found.json()["tags"])
