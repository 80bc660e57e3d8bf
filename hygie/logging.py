"""Structured JSON logs (structlog) on standard error. Log events carry counts and ids, never identifiers."""

from __future__ import annotations

import logging
import sys

import structlog


def configure(level: str = "INFO") -> None:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


if not structlog.is_configured():
    # Library use (tests, notebooks) logs JSON to stderr too, never to stdout where --json output goes.
    configure("WARNING")
