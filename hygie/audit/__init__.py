# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The record: every access, query, release, grant, key use and administrative act, written before its result
is returned (see :mod:`hygie.audit.events`), and the transparency log over it (see :mod:`hygie.audit.log`)."""

from hygie.audit import alerts as _alerts  # noqa: F401  (the alert tables, for the metadata)
from hygie.audit import storage as _storage  # noqa: F401  (the log's tables, for the metadata)
from hygie.audit.events import AuditEvent, Outcome, record, record_now

__all__ = ["AuditEvent", "Outcome", "record", "record_now"]
