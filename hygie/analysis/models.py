# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Analysis jobs, their releases and the output checkers' decisions on them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column

from hygie.db import Base
from hygie.db.sealed import SealedText
from hygie.i18n import Message, message_from_json, message_to_json


class AnalysisJob(Base):
    """One submitted analysis: its text, who asked, how it ran and what it cost."""

    __tablename__ = "analysis_job"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), nullable=False, index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("account.id"), nullable=False, index=True)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    """``aggregate`` (a declarative spec, JSON) or ``sql`` (a DuckDB SELECT)."""
    text: Mapped[str] = mapped_column(SealedText("analysis_job.text"), nullable=False)
    """Sealed at rest (hygie.db.sealed): the research question itself; read only to run and show the job."""
    status: Mapped[str] = mapped_column(String(20), nullable=False, index=True)
    """queued, running, succeeded, failed, refused."""
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True, index=True)
    """When its checks passed and it joined the queue (any server process may then claim it); None while it is
    being checked, and for jobs refused before running."""
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    duration_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    cost: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    """rows_scanned (rows of the view tables the query reads), cpu_seconds, output_rows."""
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Why it was refused or failed, in words the author can act on (never a data value)."""
    error_message: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    """The identifier and parameters of ``error`` when it is a catalogued message (``hygie.i18n``), kept in step by
    the listener below: the pages say it in French."""

    @property
    def error_said(self) -> str | None:
        """``error`` as the message it was made from, when it was one (translatable), else as stored."""
        if self.error is not None and self.error_message is not None:
            try:
                return message_from_json(self.error_message)
            except (KeyError, IndexError, TypeError, ValueError):
                return self.error  # a parameter that no longer fits its template: the stored English
        return self.error


@event.listens_for(AnalysisJob.error, "set")
def _keep_the_identifier(target: AnalysisJob, value: str | None, _old: object, _initiator: object) -> None:
    target.error_message = message_to_json(value) if isinstance(value, Message) else None


class AnalysisRelease(Base):
    """The output of a job after disclosure control, and where it stands: released, pending in the airlock,
    rejected by a checker, or refused by the checks."""

    __tablename__ = "analysis_release"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("analysis_job.id"), nullable=False, unique=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), nullable=False, index=True)
    verdict: Mapped[str] = mapped_column(String(20), nullable=False)
    """What the automatic checks said: release, review or refuse."""
    status: Mapped[str] = mapped_column(String(20), nullable=False, index=True)
    """released, pending, rejected, refused."""
    columns: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    rows: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False)
    """Empty since revision 0006an: the rows are in ``sealed_rows``. Releases made before it kept them here."""
    sealed_rows: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    """The protected table (aggregates) or the SQL output awaiting checkers, sealed under a data key wrapped by the
    project's view key (``hygie.analysis.sealing``): shredded with the project. Empty list when refused."""
    findings: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    """Reasons for output checkers (which cells were small...); never shown to the requester. In English: the API,
    the CLI and the audit read them as text."""
    findings_messages: Mapped[list[dict[str, Any] | None] | None] = mapped_column(JSON, nullable=True)
    """For each finding, its message identifier and parameters when it is a catalogued message (``hygie.i18n``),
    else None; kept in step with ``findings`` by the listener below, so the airlock's pages say them in French.
    None for releases made before revision 0015fm: their findings are shown in English."""
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    """Counts: rows, cells, suppressed, min_cell_people, threshold."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    @property
    def findings_said(self) -> list[str]:
        """Each finding as the message it was made from when that was stored (translatable), else as stored."""
        stored = self.findings_messages or []
        if len(stored) != len(self.findings):
            return list(self.findings)  # not written together (never by the listener): the text alone is sure
        return [_said_again(text, data) for text, data in zip(self.findings, stored, strict=True)]


def _said_again(text: str, data: dict[str, Any] | None) -> str:
    if data is None:
        return text
    try:
        return message_from_json(data)
    except (KeyError, IndexError, TypeError, ValueError):
        return text  # a parameter that no longer fits its template: the stored English


@event.listens_for(AnalysisRelease.findings, "set")
def _keep_the_findings_identifiers(
    target: AnalysisRelease, value: list[str] | None, _old: object, _initiator: object
) -> None:
    found = [message_to_json(f) if isinstance(f, Message) else None for f in value or []]
    target.findings_messages = found if any(m is not None for m in found) else None


class ReleaseDecision(Base):
    """One output checker's approval or rejection of a release, with the reason."""

    __tablename__ = "analysis_release_decision"
    __table_args__ = (UniqueConstraint("release_id", "checker_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("analysis_release.id"), nullable=False, index=True)
    checker_id: Mapped[int] = mapped_column(ForeignKey("account.id"), nullable=False, index=True)
    decision: Mapped[str] = mapped_column(String(10), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class LedgerEntry(Base):
    """What one aggregate output describes, for checking later outputs against it (``hygie.analysis.ledger``): its
    population and each cell's exact contributors (bitmaps of the project's dense person index, ``LedgerRoster``),
    the cells' published counts and which were suppressed. Sealed like released rows under the project's view key,
    so shredded with the project; nothing in clear. Written with the release record (same transaction) unless the
    release is refused; it counts while its release is released or pending."""

    __tablename__ = "analysis_ledger"
    __table_args__ = (UniqueConstraint("project_id", "seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), nullable=False, index=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("analysis_job.id"), nullable=False, unique=True)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    """1, 2, ... per project: two outputs checked at once against the same ledger cannot both be written."""
    sealed: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class LedgerRoster(Base):
    """A project's dense person index for its ledger: the record keys of everyone its ledger entries describe, in
    the order they first appeared (index = position), so entries hold bitmaps of small dense integers. Sealed under
    the project's view key like the entries; append-only."""

    __tablename__ = "analysis_ledger_roster"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), nullable=False, unique=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
