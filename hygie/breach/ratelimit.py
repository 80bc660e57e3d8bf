"""Rate limits of the anonymous check: a sliding window per client address and one for everyone together.

In memory, per server process: a deployment with several processes puts the limit in front (reverse proxy)
or divides the settings by the number of processes. Client addresses live only in this dict, for an hour.
"""

from __future__ import annotations

import threading
import time
from collections import deque


class RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many checks: try again in {retry_after} s")
        self.retry_after = retry_after


class Window:
    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self._hits: deque[float] = deque()

    def retry_after(self, now: float) -> int | None:
        while self._hits and self._hits[0] <= now - self.seconds:
            self._hits.popleft()
        if len(self._hits) >= self.limit:
            return max(1, int(self._hits[0] + self.seconds - now) + 1)
        return None


class RateLimiter:
    def __init__(self, per_client: int, per_client_seconds: float, overall: int, overall_seconds: float) -> None:
        self._per_client = (per_client, per_client_seconds)
        self._overall = Window(overall, overall_seconds)
        self._clients: dict[str, Window] = {}
        self._lock = threading.Lock()

    def hit(self, client: str, now: float | None = None) -> None:
        """Count one attempt, or raise :class:`RateLimited` (the attempt is then not counted)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            window = self._clients.setdefault(client, Window(*self._per_client))
            wait = max(window.retry_after(now) or 0, self._overall.retry_after(now) or 0)
            if wait:
                raise RateLimited(wait)
            window._hits.append(now)
            self._overall._hits.append(now)
            if len(self._clients) > 100_000:  # forget idle clients rather than grow without bound
                self._clients = {k: w for k, w in self._clients.items() if w.retry_after(now) or w._hits}
