# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Breach tables: incidents, per-row outcomes, notices, the outbox, account flags, the blocking index and the
anonymous check's keyed tags.

Nothing here holds an identifier in clear. People are named by the identity vault's keyed blind index
(``person_index``); the blocking index holds HMACs under a key in custody; the leaked file itself lives only
encrypted, in a file under the data dir whose data key is wrapped by custody.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hygie.db import Base
from hygie.db.sealed import SealedJSON
from hygie.identity.vault import RawBytes


class BreachIncident(Base):
    __tablename__ = "breach_incident"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    """'staged' (sealed, not matched: a second person has not confirmed it), 'imported' (matched, awaiting
    review), 'notified', or 'destroyed' (the leaked file is gone)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_by: Mapped[str] = mapped_column(String(100), nullable=False)
    confirmed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    """The second person who confirmed an import staged over HTTP (an actor reference); None from the console."""
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    file_format: Mapped[str] = mapped_column(String(20), nullable=False)
    file_name: Mapped[str] = mapped_column(String(300), nullable=False)
    """The stored (encrypted) file's name under ``<data dir>/breach``: a random name, not the leak's."""
    file_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    """The file's AES-256-GCM key wrapped by custody; erased when the file is destroyed."""
    retain_until: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    destroyed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    mapping: Mapped[list[dict[str, Any]]] = mapped_column(SealedJSON("breach_incident.mapping"), nullable=False)
    """[{column, header, field, source}] where source is 'header', 'content' or 'dpo'. Sealed at rest
    (hygie.db.sealed): a leaked file's column headers can describe people."""
    counts: Mapped[dict[str, int]] = mapped_column(JSON, nullable=False)
    categories: Mapped[dict[str, int]] = mapped_column(JSON, nullable=False)
    """Matched people per category of data exposed."""


class BreachRow(Base):
    """One data row of the leaked file: its outcome, never its values."""

    __tablename__ = "breach_row"
    __table_args__ = (UniqueConstraint("incident_id", "row"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("breach_incident.id"), nullable=False, index=True)
    row: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    confidence: Mapped[float] = mapped_column(Float, nullable=False)
    reason: Mapped[str] = mapped_column(String(200), nullable=False)
    person_index: Mapped[bytes | None] = mapped_column(RawBytes(32), nullable=True)
    candidates: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    categories: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    decision: Mapped[str | None] = mapped_column(String(20), nullable=True)
    """The DPO's review of an ambiguous row: 'confirmed' or 'rejected'."""


class BreachNotice(Base):
    __tablename__ = "breach_notice"
    __table_args__ = (UniqueConstraint("incident_id", "person_index"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("breach_incident.id"), nullable=False, index=True)
    person_index: Mapped[bytes] = mapped_column(RawBytes(32), nullable=False, index=True)
    categories: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class BreachOutbox(Base):
    """A message to send; the address is read from the vault at send time and never stored here."""

    __tablename__ = "breach_outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("breach_notice.id"), nullable=False, index=True)
    status: Mapped[str] = mapped_column(String(20), nullable=False, index=True)
    """'pending', 'sent', 'letter' (no e-mail address: a postal letter is due) or 'failed'."""
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class BreachFlag(Base):
    """A person (by blind index, so it applies to an account enrolled later too) who needs a stronger
    identity check for sensitive changes until ``until``."""

    __tablename__ = "breach_flag"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_index: Mapped[bytes] = mapped_column(RawBytes(32), nullable=False, index=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("breach_incident.id"), nullable=False)
    until: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class BreachBlockKey(Base):
    """Keyed blocking keys of vault people: HMAC(breach-blocking key, birth date and a name initial), so rows
    without a usable NIR find their few candidates without any identifier stored in clear."""

    __tablename__ = "breach_block_key"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    block: Mapped[bytes] = mapped_column(RawBytes(16), nullable=False, index=True)
    person_index: Mapped[bytes] = mapped_column(RawBytes(32), nullable=False)


class BreachBlockState(Base):
    """How far into the vault the blocking index has been built (the last identity record id read)."""

    __tablename__ = "breach_block_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_identity_id: Mapped[int] = mapped_column(Integer, nullable=False)
    scheme: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    """Which set of blocking keys the index holds (``blocking.SCHEME``); another one is rebuilt from scratch."""


class BreachCheckTag(Base):
    """For the anonymous check: a truncated hash of OPRF(NIR) of each person notified, bucketed by prefix."""

    __tablename__ = "breach_check_tag"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("breach_incident.id"), nullable=False)
    prefix: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    tag: Mapped[bytes] = mapped_column(RawBytes(16), nullable=False)


class BreachOprfKey(Base):
    """The OPRF key's seed (RFC 9497 DeriveKeyPair), wrapped by custody."""

    __tablename__ = "breach_oprf_key"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    wrapped_seed: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class BreachReveal(Base):
    """A request to see the vault identity of a row's candidate: asked by the DPO with a reason, approved or
    refused by a second person, then shown once to the asker within a short window. Holds no identity: the
    candidate is named by the vault's blind index."""

    __tablename__ = "breach_reveal"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("breach_incident.id"), nullable=False, index=True)
    row: Mapped[int] = mapped_column(Integer, nullable=False)
    person_index: Mapped[bytes] = mapped_column(RawBytes(32), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, index=True)
    """'requested', 'approved', 'refused', 'shown' or 'expired'."""
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    requested_by: Mapped[str] = mapped_column(String(100), nullable=False)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    decided_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    decision_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    shown_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
