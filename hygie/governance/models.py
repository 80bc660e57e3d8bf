# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Governance tables: accounts and their credentials, projects, reviews, members, views and opt-outs.

Nothing here holds a direct identifier of an insured person: a citizen's account points at their identity
vault entry through the vault's keyed blind index, never through a NIR, a name or an e-mail address.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from hygie.db import Base
from hygie.db.sealed import SealedText


class Account(Base):
    __tablename__ = "account"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(80), nullable=False, unique=True)
    """A login chosen at enrolment; for citizens never their NIR or e-mail address."""
    role: Mapped[str] = mapped_column(String(20), nullable=False, index=True)
    organisation: Mapped[str | None] = mapped_column(String(200), nullable=True)
    password_hash: Mapped[str] = mapped_column(String(300), nullable=False)
    totp_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    """The TOTP secret, wrapped by key custody; required for every role but citizen."""
    person_index: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True, unique=True)
    """For a citizen: the identity vault's blind index of their NIR (set at enrolment)."""
    failed_logins: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    """No longer set: failures slow the source that makes them (hygie.governance.throttle), never lock an account."""
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    """The last TOTP time step accepted for this account; a code of this step or an earlier one is refused."""
    disabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_by: Mapped[str] = mapped_column(String(100), nullable=False)
    status: Mapped[str] = mapped_column(String(30), nullable=False, default="active", server_default="active")
    """'pending_confirmation' (a governance role waiting for a second person), 'pending_enrolment' (waiting for
    its holder to enrol from the mailed code) or 'active'. Only an active account has usable credentials."""
    email_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    """A staff account's work e-mail address, wrapped by key custody; read only to mail its enrolment code."""
    confirmed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    """Who confirmed the creation of an account of a governance role (a second person), or None."""
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    enrolment_code_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True, index=True)
    """SHA-256 of the one-time enrolment code mailed to the holder (cleared once used); never the code."""
    enrolment_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    enrolled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuthSession(Base):
    """A signed-in session; only the SHA-256 of its (256-bit random) token is stored."""

    __tablename__ = "auth_session"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), nullable=False, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ApiToken(Base):
    """A scoped API token that expires; a data-scoped token names the one project it may reach."""

    __tablename__ = "api_token"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    scopes: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("project.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Project(Base):
    __tablename__ = "project"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    requester_id: Mapped[int] = mapped_column(ForeignKey("account.id"), nullable=False, index=True)
    organisation: Mapped[str] = mapped_column(String(200), nullable=False)
    title: Mapped[str] = mapped_column(String(300), nullable=False)
    purpose: Mapped[str] = mapped_column(String(40), nullable=False)
    justification: Mapped[str] = mapped_column(SealedText("project.justification"), nullable=False)
    """Sealed at rest (hygie.db.sealed): it describes the research and is never queried, only shown."""
    public_summary: Mapped[str] = mapped_column(Text, nullable=False)
    scope: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    """The requested tables and columns, the population criteria and the potential identifier, as approved."""
    duration_days: Mapped[int] = mapped_column(Integer, nullable=False)
    threshold: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, index=True)
    scope_version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    """Raised by every change of scope; approvals count only for the current version."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    review_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    """Next annual review of a long project; access stops when it passes without a review."""
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    disclosure_delayed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    """While set and in the future, citizens whose data the project used see that a project did, and until when
    its details are withheld (an authorised investigation), never nothing."""
    disclosure_delay_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    release_mode: Mapped[str] = mapped_column(String(10), nullable=False, default="sdc", server_default="sdc")
    """'sdc' (suppression and rounding, the default) or 'dp' (differential privacy with a counted budget);
    chosen in the request and approved by the reviewers (hygie.governance.privacy)."""
    privacy_budget: Mapped[float | None] = mapped_column(Float, nullable=True)
    """In 'dp' mode, the privacy budget the reviewers approved (unit: hygie.disclosure.dp); None in 'sdc' mode."""


class ProjectMember(Base):
    __tablename__ = "project_member"
    __table_args__ = (UniqueConstraint("project_id", "account_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), nullable=False, index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), nullable=False, index=True)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    added_by: Mapped[int] = mapped_column(Integer, nullable=False)


class ProjectDecision(Base):
    """One reviewer's decision on one version of a project, with its reason and the hash of what was judged.

    A change of the project, or a new round of review after a rejection, voids the decisions before it: they stay
    on record (``voided_at``, ``voided_reason``) and no longer count."""

    __tablename__ = "project_decision"
    __table_args__ = (UniqueConstraint("project_id", "scope_version", "reviewer_id", "kind"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), nullable=False, index=True)
    scope_version: Mapped[int] = mapped_column(Integer, nullable=False)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("account.id"), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    """'approval' (of a submission) or 'annual' (an annual review)."""
    decision: Mapped[str] = mapped_column(String(20), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    scope_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """SHA-256 (hex) of the canonical JSON of the project as the reviewer judged it (projects.decision_hash);
    None for decisions recorded before hashes existed, which never count."""
    voided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    voided_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)


class ProjectView(Base):
    """One materialisation of a project's minimised view. The newest ``ready`` generation is the view."""

    __tablename__ = "project_view"
    __table_args__ = (UniqueConstraint("project_id", "generation"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), nullable=False, index=True)
    generation: Mapped[int] = mapped_column(Integer, nullable=False)
    scope_version: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    """'ready', 'superseded' or 'destroyed'."""
    built_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    build_seconds: Mapped[float] = mapped_column(nullable=False)
    people: Mapped[int] = mapped_column(BigInteger, nullable=False)
    tables: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    """{table: {"rows": n, "columns": [...], "file": relative path, "sha256": ...}}"""
    membership_file: Mapped[str] = mapped_column(String(500), nullable=False)
    """Encrypted list of the hub pseudonyms of the people included (kept after the view is destroyed), under the
    hub's active pseudonym key version (a rotation re-keys it)."""
    pseudonym_version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    """Version of the hub pseudonym key this generation's project pseudonyms were derived through (a rotation
    does not re-key a built view: its objectors are re-keyed through this version)."""


class OptOut(Base):
    """A citizen's objection to the use of their data; withdrawn objections are kept, with their dates."""

    __tablename__ = "opt_out"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_index: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class PseudonymRotationFile(Base):
    """A file a hub pseudonym rotation re-wrote under its target version (:mod:`hygie.governance.pseudonym_rotation`):
    durable, not yet (or no longer) the catalogued one."""

    __tablename__ = "pseudonym_rotation_file"
    __table_args__ = (UniqueConstraint("target_version", "kind", "ref_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    target_version: Mapped[int] = mapped_column(Integer, nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    """'warehouse' (``ref_id``: the catalog's file id) or 'membership' (``ref_id``: the view generation's id)."""
    ref_id: Mapped[int] = mapped_column(Integer, nullable=False)
    old_path: Mapped[str] = mapped_column(String(500), nullable=False)
    new_path: Mapped[str] = mapped_column(String(500), nullable=False)
    rows: Mapped[int] = mapped_column(BigInteger, nullable=False)
    bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
