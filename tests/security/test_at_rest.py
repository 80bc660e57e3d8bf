# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""At rest, as an attacker who copies the data dir (SQLite) would find it: files readable by the hub's user only,
and no direct identifier of an ingested person anywhere in its bytes (database, its WAL, Parquet, keystore)."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hygie.hub import Hub
from hygie.ingest.pipeline import expand_batches, ingest_batch
from hygie.synth import generate
from tests.conftest import make_settings


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hub, Path]]:
    delivery = tmp_path_factory.mktemp("at-rest-delivery")
    generate(delivery, people=40, years=1, seed=11, start_year=2023)
    old = os.umask(0o022)  # the usual interactive umask: the hub must not rely on a strict one
    try:
        h = Hub.init(make_settings(tmp_path_factory.mktemp("at-rest") / "hub"))
        for batch in expand_batches([delivery]):
            assert ingest_batch(h, batch).status == "accepted"
    finally:
        os.umask(old)
    yield h, delivery
    h.close()


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_database_and_key_files_are_private(hub: tuple[Hub, Path]) -> None:
    h, _ = hub
    data_dir = h.settings.data_dir
    assert _mode(data_dir) == 0o700
    assert _mode(data_dir / "keys" / "keystore.json") == 0o600
    database = data_dir / "hygie.db"
    assert _mode(database) == 0o600
    for name in ("hygie.db-wal", "hygie.db-shm"):
        if (data_dir / name).exists():
            assert _mode(data_dir / name) == 0o600, name
    # An older hub whose database was made 0644 is tightened when it is opened.
    os.chmod(database, 0o644)
    Hub.open(h.settings).close()
    assert _mode(database) == 0o600


def test_no_direct_identifier_in_any_file_of_the_data_dir(hub: tuple[Hub, Path]) -> None:
    """ATTACK: grep every byte of the data dir for the NIR, e-mail, telephone and surname of ingested people."""
    h, delivery = hub
    with (delivery / "000-beneficiaries" / "IR_BEN_R.csv").open(encoding="utf-8") as f:
        people = list(csv.DictReader(f))[:10]
    needles = [
        value.encode("utf-8")
        for person in people
        for value in (person["BEN_NIR"], person["EMAIL"], person["TELEPHONE"], person["ADRESSE"])
        if len(value) >= 8
    ]
    assert len(needles) >= 30
    blobs = {p: p.read_bytes() for p in h.settings.data_dir.rglob("*") if p.is_file()}
    assert any(p.suffix == ".parquet" for p in blobs) and any(p.name == "hygie.db" for p in blobs)
    for path, blob in blobs.items():
        for needle in needles:
            assert needle not in blob, f"a direct identifier is in clear in {path.name}"


def test_a_project_justification_is_sealed_in_the_database(hub: tuple[Hub, Path]) -> None:
    """ATTACK: store a justification, then grep the raw SQLite file and its WAL for it; read it back through a hub."""
    from datetime import UTC, datetime

    from hygie.governance.models import Account, Project

    h, _ = hub
    secret = "Etude du lien entre traitement Zqx-4711 et cancers pediatriques chez les assures de Lozere"
    now = datetime.now(UTC)
    with h.session() as session:
        account = Account(username="rest", role="researcher", password_hash="x", created_at=now, created_by="test")
        session.add(account)
        session.flush()
        project = Project(
            requester_id=account.id,
            organisation="Lab",
            title="At rest",
            purpose="research",
            justification=secret,
            public_summary="public",
            scope={},
            duration_days=30,
            threshold=11,
            status="submitted",
            created_at=now,
        )
        session.add(project)
        session.commit()
        project_id = project.id
    data_dir = h.settings.data_dir
    raw = b"".join((data_dir / n).read_bytes() for n in ("hygie.db", "hygie.db-wal") if (data_dir / n).exists())
    assert b"Zqx-4711" not in raw and secret.encode() not in raw
    assert b"hygie-sealed:v1:" in raw
    other = Hub.open(h.settings)
    try:
        with other.session() as session:
            assert session.get(Project, project_id).justification == secret  # type: ignore[union-attr]
    finally:
        other.close()


def test_an_analysis_sql_text_is_sealed_in_the_database(hub: tuple[Hub, Path]) -> None:
    """ATTACK: store a job's SQL, grep the raw SQLite file and WAL for it; read it back through a hub."""
    from datetime import UTC, datetime

    from sqlalchemy import select

    from hygie.analysis.models import AnalysisJob
    from hygie.governance.models import Project

    h, _ = hub
    sql = "SELECT BEN_RES_DPT, count(*) FROM ER_PRS_F WHERE PRS_NAT_REF = 'Zqx-9042' GROUP BY 1"
    with h.session() as session:
        project = session.scalars(select(Project).where(Project.title == "At rest")).one()
        job = AnalysisJob(
            project_id=project.id,
            author_id=project.requester_id,
            kind="sql",
            text=sql,
            status="queued",
            submitted_at=datetime.now(UTC),
        )
        session.add(job)
        session.commit()
        job_id = job.id
    data_dir = h.settings.data_dir
    raw = b"".join((data_dir / n).read_bytes() for n in ("hygie.db", "hygie.db-wal") if (data_dir / n).exists())
    assert b"Zqx-9042" not in raw and b"PRS_NAT_REF" not in raw
    with h.session() as session:
        assert session.get(AnalysisJob, job_id).text == sql  # type: ignore[union-attr]


def test_a_breach_import_s_column_headers_are_sealed_in_the_database(hub: tuple[Hub, Path]) -> None:
    """ATTACK: store a breach mapping holding a leaked file's headers, grep the raw SQLite file and WAL for them."""
    from datetime import UTC, datetime, timedelta

    from hygie.breach.models import BreachIncident

    h, _ = hub
    now = datetime.now(UTC)
    mapping = [{"column": 0, "header": "Statut_VIH_Zqx7731", "field": "free_text", "source": "header"}]
    with h.session() as session:
        incident = BreachIncident(
            name="at-rest",
            status="staged",
            created_at=now,
            created_by="dpo",
            file_format="csv",
            file_name="leak.csv",
            retain_until=now + timedelta(days=1),
            mapping=mapping,
            counts={},
            categories={},
        )
        session.add(incident)
        session.commit()
        incident_id = incident.id
    data_dir = h.settings.data_dir
    raw = b"".join((data_dir / n).read_bytes() for n in ("hygie.db", "hygie.db-wal") if (data_dir / n).exists())
    assert b"Zqx7731" not in raw
    with h.session() as session:
        assert session.get(BreachIncident, incident_id).mapping == mapping  # type: ignore[union-attr]
