# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A bounded, expiring memo for values that are a pure function of their key (thread-safe).

For derivations that never change for a given key, such as a person's hub pseudonym under one key version (an HMAC
of the NIR their blind index stands for) or their citizen-index person key: a hit saves a vault decryption or a
custody call, never changes an answer. Nothing that can be revoked belongs here (sessions, accounts, grants).
Entries expire after ``seconds`` and the oldest go first past ``entries``, so memory stays bounded and a key
version destroyed in custody stops being usable from memory within ``seconds``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class BoundedMemo:
    def __init__(self, entries: int, seconds: float) -> None:
        self.entries = entries
        self.seconds = seconds
        self._items: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], T | None]) -> T | None:
        """The memoised value of ``key``, else ``compute()`` (outside the lock); a None result is not kept."""
        if self.entries <= 0:
            return compute()
        now = time.monotonic()
        with self._lock:
            found = self._items.get(key)
            if found is not None and found[0] > now:
                self._items.move_to_end(key)
                value: T = found[1]
                return value
        computed = compute()
        if computed is not None:
            with self._lock:
                self._items[key] = (now + self.seconds, computed)
                self._items.move_to_end(key)
                while len(self._items) > self.entries:
                    self._items.popitem(last=False)
        return computed

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
