"""A background thread that sequences new events and signs a checkpoint every few seconds while events flow."""

from __future__ import annotations

import logging
import threading

from hygie.audit.log import TransparencyLog

DEFAULT_INTERVAL = 2.0
"""Seconds between checkpoints while the log grows (none is issued while it does not)."""

_log = logging.getLogger(__name__)


class Checkpointer:
    def __init__(self, log: TransparencyLog, interval: float = DEFAULT_INTERVAL) -> None:
        self.log = log
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Checkpointer:
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

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(self.interval)
            try:
                self.log.checkpoint()
            except Exception:  # keep checkpointing after a transient database error; verify tells real damage
                _log.exception("audit checkpoint failed")
            if stopping:
                return


def start_checkpointer(log: TransparencyLog, interval: float = DEFAULT_INTERVAL) -> Checkpointer:
    return Checkpointer(log, interval).start()
