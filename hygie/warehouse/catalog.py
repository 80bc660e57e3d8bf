# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The catalog: which batches were accepted and which Parquet files hold them.

A file is part of the warehouse only once the catalog lists it; readers open exactly the listed files.
That single transaction is the commit point of an ingestion, so a crash leaves all of a batch or none.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from hygie.db import Base


class BatchRow(Base):
    __tablename__ = "delivery_batch"
    batch_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    producer: Mapped[str] = mapped_column(String(200), nullable=False)
    content_digest: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[str] = mapped_column(String(64), nullable=False)
    """As declared by the producer in the manifest."""
    accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    rows: Mapped[dict[str, int]] = mapped_column(JSON, nullable=False)


class FileRow(Base):
    __tablename__ = "warehouse_file"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("delivery_batch.batch_id"), nullable=False, index=True)
    table_name: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    care_month: Mapped[str | None] = mapped_column(String(7), nullable=True)
    path: Mapped[str] = mapped_column(String(500), nullable=False, unique=True)
    """Relative to the warehouse directory."""
    rows: Mapped[int] = mapped_column(BigInteger, nullable=False)
    bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
