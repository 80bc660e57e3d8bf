# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The registry of worker pools survives the garbage collector: a hub collected at any instant, in any thread,
never blocks the next analysis request (CI saw two requests hang until their deadline)."""

from __future__ import annotations

import gc
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from hygie.analysis import worker


class StubHub:
    """What a pool reads of its hub: the settings of its size, and no database engine (no advisory locks). No worker
    threads: they would look for jobs in a database the stub has not."""

    def __init__(self) -> None:
        self.settings = SimpleNamespace(analysis_queue_limit=2, analysis_workers=0, analysis_poll_seconds=2.0,
                                        analysis_recovery_seconds=60.0)  # fmt: skip
        self.engine = None


def test_a_hub_collected_inside_the_registry_does_not_hang_the_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "recover_orphans", lambda hub: 0)
    others: list[StubHub] = [StubHub()]
    old_pool = worker.workers_for(others[0])  # type: ignore[arg-type]

    def collect_while_registering(hub: Any) -> int:
        others.clear()  # the last reference: the old hub is collected here, in this thread, under the registry lock
        gc.collect()
        return 0

    monkeypatch.setattr(worker, "recover_orphans", collect_while_registering)
    new = StubHub()
    got: list[worker.Workers] = []
    request = threading.Thread(target=lambda: got.append(worker.workers_for(new)), daemon=True)  # type: ignore[arg-type]
    request.start()
    request.join(timeout=60)
    assert not request.is_alive(), "the registry's lock was taken again by a finalizer in the thread holding it"
    assert got and got[0] is not old_pool
    again = StubHub()
    assert worker.workers_for(again) is not old_pool  # type: ignore[arg-type]  # the collected hub's pool was reaped
    assert id(new) in worker._pools and old_pool not in worker._pools.values()
    assert old_pool._stopped  # stopped: its threads take no more work
