# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Sign-in throttling per source: failures slow down whoever makes them, never lock the account out.

Two keys are counted for every failed sign-in: the client address alone (spraying many usernames) and the client
address with the typed username (guessing one account). Past ``login_free_failures`` (pair) or
``login_source_free_failures`` (address) failures, the key must wait before its next attempt, a wait that doubles
with each further failure from ``login_backoff_seconds`` up to ``login_backoff_max_seconds``. A key is forgotten
``login_throttle_forget_minutes`` after its last failure. A successful sign-in clears its pair key only.

There is no per-account ceiling: an attacker failing from one address never stops the holder signing in from
another, so nobody can lock anyone out. The account's count of failures (``Account.failed_logins``) is still kept
and recorded with each failure, which the DPO's ``login_failures`` alert watches.

The counts live in the metadata database (table ``throttle_counter``, see :mod:`hygie.governance.limits`), so
they hold across portal processes and restarts: two processes serving one hub slow one source together. A key is
stored only as a keyed digest (HMAC under the custody key ``throttle``) of the address, or of the address and the
typed username (trimmed, case-folded), and is the same key whether or not an account bears it: a throttled answer
says nothing about which usernames exist. Rows go once forgotten (the limiter's sweep).
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import case, delete, select, update

from hygie.audit import Outcome, record_now
from hygie.config import Settings
from hygie.governance import limits
from hygie.governance.errors import GovernanceError, Unauthenticated
from hygie.governance.limits import Limited, ThrottleCounter
from hygie.hub import Hub
from hygie.i18n import N_, Message

T = TypeVar("T")


class Throttled(Limited):
    """Too many failed sign-ins from this source: wait ``retry_after`` seconds (429, with Retry-After)."""

    def __init__(self, retry_after: int) -> None:
        GovernanceError.__init__(
            self,
            N_(
                "too many failed sign-ins from your address: wait {seconds} s before trying again "
                "(this says nothing about any account)",
                seconds=retry_after,
            ),
        )
        self.retry_after = retry_after
        self.recorded = True


def wait_message(retry_after: int) -> Message:
    """What a throttled sign-in page says (in French from the catalogue): how long to wait, to the second below a
    minute, and that it says nothing about an account."""
    if retry_after < 60:
        if retry_after <= 1:
            return N_("Too many failed sign-ins from your address: wait 1 second before trying again. This says "
                      "nothing about any particular account.")  # fmt: skip
        return N_("Too many failed sign-ins from your address: wait {seconds} seconds before trying again. This says "
                  "nothing about any particular account.", seconds=retry_after)  # fmt: skip
    minutes = -(-retry_after // 60)
    if minutes == 1:
        return N_("Too many failed sign-ins from your address: wait 1 minute before trying again. This says nothing "
                  "about any particular account.")  # fmt: skip
    return N_("Too many failed sign-ins from your address: wait {minutes} minutes before trying again. This says "
              "nothing about any particular account.", minutes=minutes)  # fmt: skip


SOURCE, PAIR = "signin-source", "signin-pair"


class SignInThrottle:
    """Backoff per source and per (source, username), counted in the hub's database."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        """Wall-clock seconds: every process of a hub must read the same clock."""

    @staticmethod
    def _keys(source: str, username: str) -> tuple[tuple[str, str], tuple[str, str]]:
        return (SOURCE, source), (PAIR, source + "\x00" + username.strip().casefold())

    def _forget_seconds(self) -> float:
        return self.settings.login_throttle_forget_minutes * 60.0

    def wait(self, hub: Hub, source: str, username: str) -> tuple[int, str | None]:
        """Seconds this source must still wait before trying ``username`` (0: it may try), and which key (the
        first refusal of a wait, to be recorded) or None."""
        now = self.clock()
        longest, first = 0.0, None
        keys = [(bucket, limits.digest(hub, bucket, key)) for bucket, key in self._keys(source, username)]
        with hub.engine.begin() as connection:
            for bucket, key_digest in keys:
                row = (ThrottleCounter.bucket == bucket) & (ThrottleCounter.key_digest == key_digest)
                found = connection.execute(
                    select(ThrottleCounter.until, ThrottleCounter.window_start).where(row)
                ).one_or_none()
                if found is None or found.until <= now or now - found.window_start > self._forget_seconds():
                    continue
                longest = max(longest, found.until - now)
                noted = connection.execute(
                    update(ThrottleCounter).where(row & ThrottleCounter.noted.is_(False)).values(noted=True)
                ).rowcount
                if noted:
                    first = "source" if bucket == SOURCE else "pair"
        return math.ceil(longest), first

    def failed(self, hub: Hub, source: str, username: str) -> int:
        """Count a failure; the wait it imposes now (0 if none)."""
        now = self.clock()
        s = self.settings
        forget = self._forget_seconds()
        imposed = 0.0
        limits.sweep(hub, now)
        frees = (s.login_source_free_failures, s.login_free_failures)
        for (bucket, key), free in zip(self._keys(source, username), frees, strict=True):
            key_digest = limits.digest(hub, bucket, key)
            row = (ThrottleCounter.bucket == bucket) & (ThrottleCounter.key_digest == key_digest)
            forgotten = ThrottleCounter.window_start < now - forget
            with hub.engine.begin() as connection:
                limits.insert_missing(connection, bucket, key_digest, now, now + forget)
                # One atomic increment (row lock on PostgreSQL, write lock on SQLite) that the wait is computed from.
                failures, until = connection.execute(
                    update(ThrottleCounter)
                    .where(row)
                    .values(
                        count=case((forgotten, 1), else_=ThrottleCounter.count + 1),
                        until=case((forgotten, 0.0), else_=ThrottleCounter.until),
                        window_start=now,
                        expires_at=now + forget,
                    )
                    .returning(ThrottleCounter.count, ThrottleCounter.until)
                ).one()
                over = failures - free
                if over >= 0:
                    delay = min(float(s.login_backoff_max_seconds), s.login_backoff_seconds * 2.0 ** min(over, 40))
                    imposed = max(imposed, delay)
                    connection.execute(
                        update(ThrottleCounter)
                        .where(row)
                        .values(until=max(until, now + delay), noted=False, expires_at=max(now + forget, now + delay))
                    )
        return math.ceil(imposed)

    def succeeded(self, hub: Hub, source: str, username: str) -> None:
        bucket, key = self._keys(source, username)[1]
        key_digest = limits.digest(hub, bucket, key)
        with hub.engine.begin() as connection:
            connection.execute(
                delete(ThrottleCounter).where(
                    (ThrottleCounter.bucket == bucket) & (ThrottleCounter.key_digest == key_digest)
                )
            )

    def guarded(self, hub: Hub, source: str, username: str, attempt: Callable[[], T]) -> T:
        """Run a sign-in ``attempt`` unless this source must wait (:class:`Throttled`); count its failure
        (:class:`Unauthenticated`) or success. The first refusal of each wait is recorded, without the address
        or the username; the following ones, until the wait ends, are not (a flood does not fill the record)."""
        seconds, first = self.wait(hub, source, username)
        if seconds:
            if first is not None:
                record_now(hub.session, actor="anonymous", action="auth.throttle", outcome=Outcome.DENIED,
                           detail={"key": first, "retry_after": seconds})  # fmt: skip
            raise Throttled(seconds)
        try:
            result = attempt()
        except Unauthenticated:
            self.failed(hub, source, username)
            raise
        self.succeeded(hub, source, username)
        return result


def client_address(host: str | None) -> str:
    """The key of a source: the peer address the server saw (X-Forwarded-For is not trusted here; a reverse proxy
    is configured through the server's own forwarded-address settings). An IPv6 peer is keyed by its /64: one
    subscriber usually holds a whole /64, and counting each of its addresses apart would give them unlimited tries."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
