# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A background thread that sequences new events and signs a checkpoint every few seconds while events flow.

With witnesses configured (``audit_witnesses``), it also starts the witnessing thread
(:class:`hygie.audit.witnessing.WitnessingThread`) and hands it each new checkpoint without waiting.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from hygie.audit.log import TransparencyLog

if TYPE_CHECKING:
    from hygie.audit.witnessing import Witnessing, WitnessingThread
    from hygie.config import Settings

DEFAULT_INTERVAL = 2.0
"""Seconds between checkpoints while the log grows (none is issued while it does not)."""

_log = logging.getLogger(__name__)


class Checkpointer:
    def __init__(
        self, log: TransparencyLog, interval: float = DEFAULT_INTERVAL, witnessing: Witnessing | None = None
    ) -> None:
        self.log = log
        self.interval = interval
        self.witnessing = witnessing
        self._sender: WitnessingThread | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Checkpointer:
        if self.witnessing is not None and self._sender is None:
            from hygie.audit.witnessing import WitnessingThread

            self._sender = WitnessingThread(self.witnessing)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="audit-checkpointer", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop after issuing a last checkpoint for whatever was recorded until now."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._sender is not None:
            self._sender.stop(timeout)
            self._sender = None

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(self.interval)
            try:
                checkpoint = self.log.checkpoint()
                if self._sender is not None:
                    self._sender.offer(checkpoint)  # returns at once: witnesses are asked in their own thread
            except Exception:  # keep checkpointing after a transient database error; verify tells real damage
                _log.exception("audit checkpoint failed")
            if stopping:
                return


def start_checkpointer(
    log: TransparencyLog, interval: float = DEFAULT_INTERVAL, settings: Settings | None = None
) -> Checkpointer:
    """Start checkpointing; with ``settings`` naming witnesses, send them every new checkpoint too."""
    witnessing = None
    if settings is not None:
        from hygie.audit.witnessing import Witnessing

        witnessing = Witnessing.from_settings(log, settings)
    return Checkpointer(log, interval, witnessing).start()
