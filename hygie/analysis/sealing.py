# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Outputs at rest: every release's rows are sealed (AES-256-GCM) under a data key wrapped by the project's view key.

Pending outputs (SQL awaiting checkers, aggregates the checks could not clear) are unprotected data: they must not
outlive the project in the metadata database. We seal every release, released ones too, so one rule holds:
``destroy_view`` destroys the project's view key and with it every output of the project (crypto-shredding), and
a database backup holds no output in clear. Released outputs have been downloaded by then; the platform keeps no
readable copy after the project ends.

Blob: 2-byte length of the wrapped key, the wrapped key, a 12-byte nonce, the ciphertext. The project and job are
authenticated (wrap context and GCM associated data), so a blob moved to another release does not open.
"""

from __future__ import annotations

import json
import os
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hygie.governance.views import project_view_key
from hygie.hub import Hub
from hygie.i18n import N_
from hygie.keys import KeyPurpose
from hygie.keys.custody import KeyError_

_LABEL = "hygie/analysis/release/v1"
NONCE_BYTES = 12


class OutputShredded(Exception):
    """The project's view key is gone (the project ended): its outputs can no longer be read."""


def _context(project_id: int, job_id: int) -> bytes:
    return f"{_LABEL}|project:{project_id}|job:{job_id}".encode()


def seal_rows(hub: Hub, project_id: int, job_id: int, rows: list[dict[str, Any]]) -> bytes:
    name = project_view_key(project_id)
    hub.custody.ensure(name, KeyPurpose.WRAP)
    data_key = AESGCM.generate_key(bit_length=256)
    context = _context(project_id, job_id)
    wrapped = hub.custody.wrap(name, data_key, context)
    nonce = os.urandom(NONCE_BYTES)
    plain = json.dumps(rows, ensure_ascii=False, default=str).encode("utf-8")
    sealed = AESGCM(data_key).encrypt(nonce, plain, context)
    return len(wrapped).to_bytes(2, "big") + wrapped + nonce + sealed


def open_rows(hub: Hub, project_id: int, job_id: int, blob: bytes) -> list[dict[str, Any]]:
    size = int.from_bytes(blob[:2], "big")
    wrapped, nonce, sealed = blob[2 : 2 + size], blob[2 + size : 2 + size + NONCE_BYTES], blob[2 + size + NONCE_BYTES :]
    context = _context(project_id, job_id)
    try:
        data_key = hub.custody.unwrap(project_view_key(project_id), wrapped, context)
    except KeyError_ as exc:
        raise OutputShredded(
            N_(
                "the output of analysis {job} can no longer be read: project {project}'s keys were destroyed when it "
                "ended",
                job=job_id,
                project=project_id,
            )
        ) from exc
    rows: list[dict[str, Any]] = json.loads(AESGCM(data_key).decrypt(nonce, sealed, context))
    return rows
