# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Rate limits of the anonymous check: a window per client address and one for everyone together.

Counted in the hub's database (:mod:`hygie.governance.limits`), so the limits hold across portal processes and
restarts; client addresses are stored only as keyed digests, for the length of their window. The evaluated
attempts (one lookup each) are kept there too, as digests of their random tokens, so a lookup may reach any
process of the hub.
"""

from __future__ import annotations

from hygie.governance import limits
from hygie.hub import Hub
from hygie.i18n import N_

CLIENT, EVERYONE, ATTEMPT = "breach-check-client", "breach-check-all", "breach-check-attempt"


class RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        self.message = N_("too many checks: try again in {seconds} s", seconds=retry_after)
        super().__init__(self.message)
        self.retry_after = retry_after


class RateLimiter:
    def __init__(self, per_client: int, per_client_seconds: int, overall: int, overall_seconds: int) -> None:
        self.per_client = (per_client, per_client_seconds)
        self.overall = (overall, overall_seconds)

    def hit(self, hub: Hub, client: str) -> None:
        """Count one attempt, or raise :class:`RateLimited` (the attempt is then not counted)."""
        try:
            limits.spend(hub, CLIENT, client, limit=self.per_client[0], window_seconds=self.per_client[1])
        except limits.Limited as exc:
            raise RateLimited(exc.retry_after) from None
        try:
            limits.spend(hub, EVERYONE, "*", limit=self.overall[0], window_seconds=self.overall[1])
        except limits.Limited as exc:
            limits.refund(hub, CLIENT, client)
            raise RateLimited(exc.retry_after) from None


def grant_attempt(hub: Hub, attempt: str, seconds: int) -> None:
    """Remember an evaluated attempt (a random token) for one lookup within ``seconds``, in any process."""
    limits.grant(hub, ATTEMPT, attempt, seconds=seconds)


def redeem_attempt(hub: Hub, attempt: str) -> bool:
    """True once per granted attempt, within its time."""
    return limits.redeem(hub, ATTEMPT, attempt)
