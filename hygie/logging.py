# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Structured JSON logs (structlog) on standard error. Log events carry counts and ids, never identifiers."""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback

import structlog


class _StderrLogger:
    """Writes each line to whatever ``sys.stderr`` is now, not to the stream it was when logging was configured: a
    command run inside another program (a test runner swapping streams, an embedding server) must never make a
    later log line fail on a closed stream."""

    def msg(self, message: str) -> None:
        # A stream closed under us drops the line; the request goes on.
        with contextlib.suppress(ValueError):
            print(message, file=sys.stderr, flush=True)

    log = debug = info = warn = warning = error = critical = exception = fatal = failure = err = msg


def where(exc: BaseException, depth: int = 12) -> str:
    """An exception as a log line may keep it: its type and where it was raised (file, line, function, innermost
    first), never its message, which may quote a value of the data it failed on (a cast, a key, a row)."""
    frames = traceback.extract_tb(exc.__traceback__)[-depth:]
    trail = " <- ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in reversed(frames))
    return f"{type(exc).__module__}.{type(exc).__qualname__} at {trail or 'unknown'}"


def _stderr_logger(*_args: object) -> _StderrLogger:
    return _StderrLogger()


def configure(level: str = "INFO") -> None:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=True,
    )


if not structlog.is_configured():
    # Library use (tests, notebooks) logs JSON to stderr too, never to stdout where --json output goes.
    configure("WARNING")
