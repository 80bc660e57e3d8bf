"""Sign-in throttling per source: failures slow down whoever makes them, never lock the account out.

Two keys are counted for every failed sign-in: the client address alone (spraying many usernames) and the client
address with the typed username (guessing one account). Past ``login_free_failures`` (pair) or
``login_source_free_failures`` (address) failures, the key must wait before its next attempt, a wait that doubles
with each further failure from ``login_backoff_seconds`` up to ``login_backoff_max_seconds``. A key is forgotten
``login_throttle_forget_minutes`` after its last failure. A successful sign-in clears its pair key only.

There is no per-account ceiling: an attacker failing from one address never stops the holder signing in from
another, so nobody can lock anyone out. The account's count of failures (``Account.failed_logins``) is still kept
and recorded with each failure, which the DPO's ``login_failures`` alert watches.

A typed username is kept in memory only as a SHA-256 digest, and is the same key whether or not an account bears
it: a throttled answer says nothing about which usernames exist. State is per portal process.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from hygie.audit import Outcome, record_now
from hygie.config import Settings
from hygie.governance.errors import GovernanceError, Unauthenticated
from hygie.hub import Hub

T = TypeVar("T")


class Throttled(GovernanceError):
    """Too many failed sign-ins from this source: wait ``retry_after`` seconds (429, with Retry-After)."""

    status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"too many failed sign-ins from your address: wait {retry_after} s before trying again "
            "(this says nothing about any account)"
        )
        self.retry_after = retry_after
        self.recorded = True


def french_wait(retry_after: int) -> str:
    """The French sentence for a throttled sign-in page."""
    if retry_after < 60:
        when = f"{retry_after} seconde{'s' if retry_after > 1 else ''}"
    else:
        minutes = -(-retry_after // 60)
        when = f"{minutes} minute{'s' if minutes > 1 else ''}"
    return (
        f"Trop de tentatives de connexion ont échoué depuis votre adresse : patientez {when} avant de réessayer. "
        "Cela ne dit rien d'un compte en particulier."
    )


@dataclass
class _Key:
    failures: int = 0
    until: float = 0.0
    last: float = 0.0
    noted: bool = False
    """The current wait's first refusal is on the record (later ones, during the same wait, are not)."""


class SignInThrottle:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self._keys: OrderedDict[tuple[str, ...], _Key] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _pair(source: str, username: str) -> tuple[str, ...]:
        return ("pair", source, hashlib.sha256(username.strip().casefold().encode("utf-8")).hexdigest())

    @staticmethod
    def _source(source: str) -> tuple[str, ...]:
        return ("source", source)

    def _get(self, key: tuple[str, ...], now: float) -> _Key | None:
        entry = self._keys.get(key)
        if entry is not None and now - entry.last > self.settings.login_throttle_forget_minutes * 60:
            del self._keys[key]
            return None
        return entry

    def wait(self, source: str, username: str) -> tuple[int, str | None]:
        """Seconds this source must still wait before trying ``username`` (0: it may try), and which key (the
        first refusal of a wait, to be recorded) or None."""
        now = self.clock()
        with self._lock:
            longest, first = 0.0, None
            for key in (self._source(source), self._pair(source, username)):
                entry = self._get(key, now)
                if entry is None or entry.until <= now:
                    continue
                if entry.until - now > longest:
                    longest = entry.until - now
                if not entry.noted:
                    entry.noted = True
                    first = key[0]
            return math.ceil(longest), first

    def failed(self, source: str, username: str) -> int:
        """Count a failure; the wait it imposes now (0 if none)."""
        now = self.clock()
        s = self.settings
        imposed = 0.0
        with self._lock:
            for key, free in ((self._source(source), s.login_source_free_failures),
                              (self._pair(source, username), s.login_free_failures)):  # fmt: skip
                entry = self._get(key, now) or _Key()
                entry.failures += 1
                entry.last = now
                over = entry.failures - free
                if over >= 0:
                    delay = min(float(s.login_backoff_max_seconds), s.login_backoff_seconds * 2.0 ** min(over, 40))
                    entry.until, entry.noted = now + delay, False
                    imposed = max(imposed, delay)
                self._keys[key] = entry
                self._keys.move_to_end(key)
            while len(self._keys) > s.login_throttle_max_sources:
                self._keys.popitem(last=False)
        return math.ceil(imposed)

    def succeeded(self, source: str, username: str) -> None:
        with self._lock:
            self._keys.pop(self._pair(source, username), None)

    def guarded(self, hub: Hub, source: str, username: str, attempt: Callable[[], T]) -> T:
        """Run a sign-in ``attempt`` unless this source must wait (:class:`Throttled`); count its failure
        (:class:`Unauthenticated`) or success. The first refusal of each wait is recorded, without the address
        or the username; the following ones, until the wait ends, are not (a flood does not fill the record)."""
        seconds, first = self.wait(source, username)
        if seconds:
            if first is not None:
                record_now(hub.session, actor="anonymous", action="auth.throttle", outcome=Outcome.DENIED,
                           detail={"key": first, "retry_after": seconds})  # fmt: skip
            raise Throttled(seconds)
        try:
            result = attempt()
        except Unauthenticated:
            self.failed(source, username)
            raise
        self.succeeded(source, username)
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
