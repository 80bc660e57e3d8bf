# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Attempt limits kept in the metadata database, so they hold across portal processes and restarts.

``spend(hub, bucket, key, limit=, window_seconds=)`` counts one attempt for ``(bucket, key)`` or raises
:class:`Limited`. A key's window opens at its first attempt and lasts ``window_seconds``; within it at most ``limit``
attempts are counted; the first attempt after the window ends opens a new one. A refused attempt is not counted
(a flood does not push the end of the wait further away; it buys nothing either). Windows follow one another, they
do not slide: a key may spend ``limit`` attempts at the end of one window and ``limit`` more at the start of the
next, so any span of ``window_seconds`` holds at most ``2 * limit`` attempts, and every full window at most ``limit``.

Each attempt is counted in its own short transaction on its own connection, committed before ``spend`` returns,
so a caller's rollback never gives the attempt back. The count is one conditional ``UPDATE`` (after an
``INSERT ... ON CONFLICT DO NOTHING`` that makes sure the row exists): on PostgreSQL the row lock and the
re-check of the ``WHERE`` clause, on SQLite the database write lock, make two processes hammering one key
together never exceed the limit.

On SQLite, call ``spend`` before the caller's session has written anything in its transaction: the caller would
otherwise hold the write lock that this separate connection waits for.

Keys are never stored: only an HMAC-SHA-256 of ``bucket`` and ``key`` under a key-custody key (``throttle``),
so the table holds no client address, username or NIR. Rows end ``window_seconds`` after their window opened and
are swept (at most ``SWEEP_ROWS`` a time, at most once every ``SWEEP_EVERY_SECONDS`` per process) while the
limiter is used: the table holds the keys of the current windows only.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from sqlalchemy import Boolean, Float, Integer, LargeBinary, String, UniqueConstraint, case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column

from hygie.db import Base
from hygie.governance.errors import GovernanceError
from hygie.hub import Hub
from hygie.i18n import N_
from hygie.keys.custody import KeyNotFound, KeyPurpose

THROTTLE_KEY = "throttle"
"""The key-custody key (pseudonym purpose) under which limiter keys are digested."""
SWEEP_ROWS = 500
SWEEP_EVERY_SECONDS = 30.0

clock: Callable[[], float] = time.time
"""Wall-clock seconds shared by every process (tests replace it to move time)."""


class ThrottleCounter(Base):
    """One limited key's current window: when it opened, how many attempts it counted, when the row may go."""

    __tablename__ = "throttle_counter"
    __table_args__ = (UniqueConstraint("bucket", "key_digest", name="uq_throttle_counter_bucket_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[str] = mapped_column(String(40), nullable=False)
    key_digest: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    """HMAC-SHA-256 (custody key ``throttle``) of the bucket and the key; never the key."""
    window_start: Mapped[float] = mapped_column(Float, nullable=False)
    """Epoch seconds at which the current window opened."""
    count: Mapped[int] = mapped_column(Integer, nullable=False)
    expires_at: Mapped[float] = mapped_column(Float, nullable=False, index=True)
    """Epoch seconds after which the row may be swept (the end of the current window, or of a wait)."""
    until: Mapped[float] = mapped_column(Float, nullable=False, default=0.0, server_default="0")
    """For backoff users (hygie.governance.throttle): epoch seconds until which the key must wait; else 0."""
    noted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default="0")
    """For backoff users: the current wait's first refusal is on the record (later ones are not)."""


class Limited(GovernanceError):
    """Too many attempts of this kind from this key: wait ``retry_after`` seconds (429, with Retry-After)."""

    status = 429

    def __init__(self, retry_after: int, until: float | None = None) -> None:
        super().__init__(
            N_(
                "too many attempts: wait {seconds} s before trying again (this says nothing about any account "
                "or person)",
                seconds=retry_after,
            )
        )
        self.retry_after = retry_after
        self.until = until
        """When the key's window ends (epoch seconds): the same for every refusal of one window."""


def digest(hub: Hub, bucket: str, key: str) -> bytes:
    """The stored form of a limiter key: HMAC-SHA-256 of bucket and key under the custody key ``throttle``."""
    message = bucket.encode("utf-8") + b"\x00" + key.encode("utf-8")
    try:
        return hub.custody.mac(THROTTLE_KEY, [message])[0]
    except KeyNotFound:
        hub.custody.ensure(THROTTLE_KEY, KeyPurpose.PSEUDONYM)
        return hub.custody.mac(THROTTLE_KEY, [message])[0]


def insert_missing(connection: Connection, bucket: str, key_digest: bytes, now: float, expires_at: float) -> None:
    """Make sure the row of ``(bucket, key_digest)`` exists (a fresh, empty window if it did not)."""
    values = {"bucket": bucket, "key_digest": key_digest, "window_start": now, "count": 0,
              "expires_at": expires_at, "until": 0.0, "noted": False}  # fmt: skip
    if connection.dialect.name == "postgresql":
        pg = (
            postgresql.insert(ThrottleCounter)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["bucket", "key_digest"])
        )
        connection.execute(pg)
    else:
        lite = (
            sqlite.insert(ThrottleCounter)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["bucket", "key_digest"])
        )
        connection.execute(lite)


_sweeps: dict[int, float] = {}
_sweeps_lock = threading.Lock()


def sweep(hub: Hub, now: float | None = None, *, force: bool = False) -> int:
    """Delete up to ``SWEEP_ROWS`` expired rows (at most once every ``SWEEP_EVERY_SECONDS`` per engine unless
    ``force``); returns how many went."""
    now = clock() if now is None else now
    with _sweeps_lock:
        last = _sweeps.get(id(hub.engine))
        if not force and last is not None and now - last < SWEEP_EVERY_SECONDS:
            return 0
        _sweeps[id(hub.engine)] = now
    expired = select(ThrottleCounter.id).where(ThrottleCounter.expires_at < now).limit(SWEEP_ROWS)
    with hub.engine.begin() as connection:
        result = connection.execute(delete(ThrottleCounter).where(ThrottleCounter.id.in_(expired.scalar_subquery())))
    return int(result.rowcount or 0)


def spend(hub: Hub, bucket: str, key: str, *, limit: int, window_seconds: int) -> None:
    """Count one attempt for ``(bucket, key)`` in its own committed transaction, or raise :class:`Limited` if the
    key already spent ``limit`` attempts in its current window (the refused attempt is not counted)."""
    if limit < 1 or window_seconds < 1:
        raise ValueError("a limit needs at least one attempt per window of at least one second")
    key_digest = digest(hub, bucket, key)
    now = clock()
    sweep(hub, now)
    row = (ThrottleCounter.bucket == bucket) & (ThrottleCounter.key_digest == key_digest)
    ended = ThrottleCounter.window_start <= now - window_seconds
    for _ in range(3):  # the row may be swept between our insert and our update (another transaction): again
        with hub.engine.begin() as connection:
            insert_missing(connection, bucket, key_digest, now, now + window_seconds)
            counted = connection.execute(
                update(ThrottleCounter)
                .where(row & (ended | (ThrottleCounter.count < limit)))
                .values(
                    count=case((ended, 1), else_=ThrottleCounter.count + 1),
                    window_start=case((ended, now), else_=ThrottleCounter.window_start),
                    expires_at=case((ended, now + window_seconds), else_=ThrottleCounter.window_start + window_seconds),
                )
            ).rowcount
            if counted:
                return
            opened = connection.execute(select(ThrottleCounter.window_start).where(row)).scalar_one_or_none()
        if opened is not None:
            raise Limited(max(1, math.ceil(opened + window_seconds - now)), until=opened + window_seconds)
    raise Limited(window_seconds, until=now + window_seconds)


def refund(hub: Hub, bucket: str, key: str) -> None:
    """Give back one attempt counted by :func:`spend` (when a second, wider limit refused the same request)."""
    row = (ThrottleCounter.bucket == bucket) & (ThrottleCounter.key_digest == digest(hub, bucket, key))
    with hub.engine.begin() as connection:
        connection.execute(
            update(ThrottleCounter).where(row & (ThrottleCounter.count > 0)).values(count=ThrottleCounter.count - 1)
        )


def grant(hub: Hub, bucket: str, key: str, *, seconds: float) -> None:
    """Remember ``key`` (a random one-time token) for ``seconds``, good for one :func:`redeem` in any process."""
    now = clock()
    with hub.engine.begin() as connection:
        insert_missing(connection, bucket, digest(hub, bucket, key), now, now + seconds)


def redeem(hub: Hub, bucket: str, key: str) -> bool:
    """Use a token given by :func:`grant`: True once, within its time; False if unknown, used or expired."""
    now = clock()
    row = (ThrottleCounter.bucket == bucket) & (ThrottleCounter.key_digest == digest(hub, bucket, key))
    with hub.engine.begin() as connection:
        used = connection.execute(
            update(ThrottleCounter)
            .where(row & (ThrottleCounter.count == 0) & (ThrottleCounter.expires_at >= now))
            .values(count=1)
        ).rowcount
    return bool(used)


def forget(hub: Hub, bucket: str) -> int:
    """Forget every key of ``bucket`` (an operator lifting a limit, or a test starting afresh)."""
    with hub.engine.begin() as connection:
        return int(connection.execute(delete(ThrottleCounter).where(ThrottleCounter.bucket == bucket)).rowcount or 0)
