"""The record: every access, query, release, grant, key use and administrative act, written before its result
is returned (see :mod:`hygie.audit.events`)."""

from hygie.audit.events import AuditEvent, Outcome, record, record_now

__all__ = ["AuditEvent", "Outcome", "record", "record_now"]
