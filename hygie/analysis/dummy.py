# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Dummy data: for every project, a synthetic dataset with exactly its view's schema, available before approval.

Researchers write and test their code outside the platform on it; the same aggregate spec or SQL then runs
unchanged on the real view. Nothing in it comes from real people, by construction:

- a synthetic population is generated with :mod:`hygie.synth` (``dummy_people`` people over the project's
  period, seeded by ``dummy_seed`` and the years: same settings, same people) and ingested into a throwaway,
  platform-internal **dummy hub** under ``<data dir>/dummy/hub-<first year>-<years>-p<people>-s<seed>``, with its
  own keys and
  its own SQLite database. It is shared by every project whose period covers the same years, and reused;
- the project's view is built over that hub with the very code that builds real views
  (:func:`hygie.governance.views.build_view`, on a copy of the project's row in the dummy hub), so tables,
  columns, types, claim keys, re-keyed pseudonyms and generalised dates are the same as the real view's by
  construction, and the population criteria (age, sex, place, drugs, acts, exemptions) select among
  synthetic people;
- the real warehouse, vault and keys are never opened: this module reads only ``hub.settings`` and the
  project's row (scope, purpose) from the real hub.

The export is a ZIP of one Parquet and one CSV file per table, with a README.txt in French and English. It is
not encrypted: it is synthetic. It is cached per view generation, so downloads are byte-identical until the
project's scope changes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pydantic import SecretStr
from sqlalchemy import select

from hygie.analysis.cellkeys import CellKeyError, project_record_keys
from hygie.analysis.compile import SpecError, compile_aggregate, output_table
from hygie.analysis.engine import DuckDBEngine, Limits, QueryStopped
from hygie.analysis.service import disclosure_policy
from hygie.analysis.spec import AggregateSpec
from hygie.analysis.sqlcheck import SQLRefused, check_sql
from hygie.config import Settings
from hygie.disclosure import protect
from hygie.governance.models import Account, Project, ProjectView
from hygie.governance.policy import Scope
from hygie.governance.views import ViewError, build_view, newest_ready, open_view
from hygie.hub import Hub
from hygie.i18n import N_
from hygie.ingest.pipeline import expand_batches, ingest_batches
from hygie.locks import exclusive
from hygie.synth import generate
from hygie.tabular import safe_table

DUMMY_DIR = "dummy"
"""Under the real hub's data dir: dummy hubs, their exports, one lock."""
DUMMY_PASSPHRASE = "hygie dummy hub: synthetic people only, nothing secret"  # noqa: S105  (see below)
"""The dummy hub's keystore passphrase. Not a secret: everything the dummy hub holds is synthetic, and the
exports leave unencrypted anyway; the keystore exists only because the view-building code needs key custody."""
DUMMY_ACCOUNT = "dummy-data"
"""The one account of a dummy hub: the requester of every project copy (the schema needs one)."""
ACTOR = "system:dummy-data"
MAX_YEARS = 20
"""hygie.synth generates at most 20 years of care."""


class DummyDataError(Exception):
    """Dummy data cannot be made for a project; the message says which and what to do."""


class DummyCodeRefused(DummyDataError):
    """A spec or SQL tried on dummy data was refused or stopped, as it would be on the real view."""


def _said(exc: Exception) -> str:
    """An exception's message as it was raised (a catalogued message keeps its identifier), not ``str(exc)``."""
    message = getattr(exc, "message", None)
    if isinstance(message, str):
        return message
    if len(exc.args) == 1 and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)


@dataclass(frozen=True)
class DummyExport:
    """A project's dummy dataset, ready to download."""

    project_id: int
    content: bytes
    """The ZIP (README.txt, parquet/<TABLE>.parquet, csv/<TABLE>.csv), read under the dummy lock."""
    sha256: str
    generation: int
    """The dummy view's generation in the dummy hub (a new one after each change of scope)."""
    people: int
    rows: dict[str, int]
    seed: int
    first_year: int
    years: int

    @property
    def filename(self) -> str:
        return f"hygie-project-{self.project_id}-dummy-data.zip"


def dummy_root(settings: Settings) -> Path:
    return settings.data_dir / DUMMY_DIR


def _years(scope: Scope) -> tuple[int, int]:
    start, end = scope.population.period_start.year, scope.population.period_end.year
    return start, end - start + 1


def dummy_seed(settings: Settings, first_year: int, years: int) -> int:
    """The synthesis seed of the dummy hub for these years: derived from ``dummy_seed``, so deterministic."""
    digest = hashlib.sha256(f"hygie/dummy/v1|{settings.dummy_seed}|{first_year}|{years}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def dummy_settings(settings: Settings, first_year: int, years: int) -> Settings:
    """The dummy hub's settings: the real hub's policy numbers, its own data dir, SQLite, its own keystore."""
    return settings.model_copy(
        update={
            # Named after everything that shapes its population, so a change of settings makes a new one.
            "data_dir": dummy_root(settings)
            / f"hub-{first_year}-{years}-p{settings.dummy_people}-s{dummy_seed(settings, first_year, years)}",
            "database_url": None,  # never the real metadata database
            "key_file": None,
            "key_passphrase": SecretStr(DUMMY_PASSPHRASE),
            "key_backend": "local",
            # A light Argon2id: the passphrase protects nothing (see DUMMY_PASSPHRASE).
            "kdf_memory_kib": 8192,
            "kdf_iterations": 1,
            "kdf_lanes": 1,
        }
    )


@contextmanager
def _dummy_lock(settings: Settings) -> Iterator[None]:
    """One dummy build at a time per real hub: requests are rare, and the dummy hubs are shared by projects."""
    root = dummy_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    with exclusive(root / "dummy.lock"):
        yield


def _open_dummy_hub(settings: Settings, first_year: int, years: int) -> Hub:
    """The dummy hub for these years, generated and ingested on first use (seconds for a few thousand people)."""
    target = dummy_settings(settings, first_year, years)
    ready = target.data_dir / "READY"
    if ready.exists():
        return Hub.open(target)
    # A half-made hub (a crash mid-ingestion) is discarded and made again: it holds nothing worth keeping.
    shutil.rmtree(target.data_dir, ignore_errors=True)
    hub = Hub.init(target)
    try:
        with tempfile.TemporaryDirectory(dir=dummy_root(settings), prefix="delivery-") as delivery:
            generate(
                Path(delivery),
                people=settings.dummy_people,
                years=years,
                seed=dummy_seed(settings, first_year, years),
                start_year=first_year,
                producer="HYGIE-DUMMY",
            )
            for result in ingest_batches(hub, expand_batches([Path(delivery)])):
                if result.status != "accepted":
                    raise DummyDataError(
                        N_(
                            "the synthetic batch {batch} for dummy data {first_year}+{years} was {status}: {errors}; "
                            "this is a bug in hygie.synth or the ingestion rules",
                            batch=result.batch_dir.name,
                            first_year=first_year,
                            years=years,
                            status=result.status,
                            errors=str(result.errors[:3]),
                        )
                    )
        ready.write_text(json.dumps({"people": settings.dummy_people, "seed": dummy_seed(settings, first_year, years)}))
    except BaseException:
        hub.close()
        shutil.rmtree(target.data_dir, ignore_errors=True)
        raise
    return hub


def _copy_project(session: Any, project: Project) -> tuple[Project, bool]:
    """The project's row in the dummy hub (same id), brought up to date; True if its scope or purpose changed."""
    account = session.scalar(select(Account).where(Account.username == DUMMY_ACCOUNT))
    now = datetime.now(UTC)
    if account is None:
        # No password: nobody signs in to a dummy hub.
        account = Account(username=DUMMY_ACCOUNT, role="researcher", password_hash="-", created_at=now,  # noqa: S106
                          created_by=ACTOR)  # fmt: skip
        session.add(account)
        session.flush()
    copy: Project | None = session.get(Project, project.id)
    if copy is None:
        copy = Project(
            id=project.id, requester_id=account.id, organisation="dummy", title="dummy", purpose=project.purpose,
            justification="dummy data", public_summary="dummy data", scope=project.scope, duration_days=1,
            threshold=project.threshold, status="active", scope_version=1, created_at=now,
        )  # fmt: skip
        session.add(copy)
        session.flush()
        return copy, True
    copy.threshold = project.threshold  # what disclosure control applies when code is tried on the dummy view
    changed = copy.scope != project.scope or copy.purpose != project.purpose
    if changed:
        copy.scope = project.scope
        copy.purpose = project.purpose
        copy.scope_version += 1
    return copy, changed


@contextmanager
def dummy_view(settings: Settings, project: Project) -> Iterator[tuple[Hub, Project, ProjectView]]:
    """The dummy hub, the project's copy in it and its dummy view (built or refreshed if need be), under the
    dummy lock. Only ``settings`` and the project's scope and purpose are read from the real hub."""
    try:
        scope = Scope.model_validate(project.scope)
    except ValueError as exc:
        raise DummyDataError(
            N_("project {project}: its scope is not valid ({error}); fix it first", project=project.id, error=str(exc))
        ) from None
    first_year, years = _years(scope)
    if years > MAX_YEARS:
        raise DummyDataError(
            N_(
                "project {project}: dummy data covers at most {maximum} years; its period spans {years}",
                project=project.id,
                maximum=MAX_YEARS,
                years=years,
            )
        )
    with _dummy_lock(settings):
        hub = _open_dummy_hub(settings, first_year, years)
        try:
            with hub.session() as session:
                copy, changed = _copy_project(session, project)
                view = newest_ready(session, project.id)
                if changed or view is None:
                    try:
                        view = build_view(hub, session, copy, actor=ACTOR)
                    except ViewError as exc:
                        raise DummyDataError(_said(exc)) from None
                session.commit()
                yield hub, copy, view
        finally:
            hub.close()


@contextmanager
def open_dummy(
    settings: Settings, project: Project, *, limits: dict[str, str | int] | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A sandbox-ready DuckDB connection on the project's dummy view, as :func:`open_view` gives on the real
    one (same table names, same columns, same ``limits``): run a spec or SQL on it inside the platform."""
    with dummy_view(settings, project) as (hub, copy, _view), hub.session() as session:
        con = open_view(hub, session, copy, limits=limits)
        try:
            yield con
        finally:
            con.close()


def export_dummy(settings: Settings, project: Project) -> DummyExport:
    """The project's dummy dataset as a ZIP (cached per dummy view generation)."""
    with dummy_view(settings, project) as (hub, copy, view), hub.session() as session:
        scope = Scope.model_validate(copy.scope)
        first_year, years = _years(scope)
        exports = dummy_root(settings) / "exports" / str(project.id)
        exports.mkdir(parents=True, exist_ok=True)
        # Named after the dummy hub (its years) and the view generation: a change of scope makes a new file.
        path = exports / f"{first_year}-{years}-{view.generation}.zip"
        seed = dummy_seed(settings, first_year, years)
        rows = {table: int(meta["rows"]) for table, meta in view.tables.items()}
        if not path.exists():
            con = open_view(hub, session, copy)
            try:
                tables = {table: con.sql(f'SELECT * FROM "{table}"').to_arrow_table() for table in view.tables}
            finally:
                con.close()
            readme = _readme(project.id, scope, tables, view.people, seed, settings.dummy_people, first_year, years)
            data = _zip(tables, readme)
            for stale in exports.iterdir():
                stale.unlink(missing_ok=True)  # exports of older generations (the scope changed since)
            partial = path.with_suffix(".partial")
            partial.write_bytes(data)
            os.replace(partial, path)
        content = path.read_bytes()
        return DummyExport(
            project_id=project.id, content=content, sha256=hashlib.sha256(content).hexdigest(),
            generation=view.generation, people=view.people, rows=rows, seed=seed, first_year=first_year, years=years,
        )  # fmt: skip


_ZIP_TIME = (2020, 1, 1, 0, 0, 0)
"""A fixed timestamp for every ZIP entry: the archive's bytes depend on its content only."""


def _entry(name: str, compress: bool) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, _ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED  # Parquet is compressed already
    info.external_attr = 0o644 << 16
    return info


def _zip(tables: dict[str, pa.Table], readme: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(_entry("README.txt", True), readme.encode("utf-8"))
        for table, data in tables.items():
            parquet = io.BytesIO()
            pq.write_table(data, parquet, compression="zstd")
            archive.writestr(_entry(f"parquet/{table}.parquet", False), parquet.getvalue())
            text = io.BytesIO()
            pacsv.write_csv(safe_table(data), text)  # text cells a spreadsheet would execute are escaped
            archive.writestr(_entry(f"csv/{table}.csv", True), text.getvalue())
    return buffer.getvalue()


def _readme(
    project_id: int,
    scope: Scope,
    tables: dict[str, pa.Table],
    people: int,
    seed: int,
    population: int,
    first_year: int,
    years: int,
) -> str:
    period = f"{scope.population.period_start.isoformat()} – {scope.population.period_end.isoformat()}"
    listing = []
    for table, data in tables.items():
        listing.append(f"  {table} ({data.num_rows} rows / lignes)")
        for f in data.schema:
            form = scope.column_form(table, f.name)
            note = " (first day of the month / premier jour du mois)" if form == "month" else ""
            listing.append(f"    {f.name}: {f.type}{note}")
    columns = "\n".join(listing)
    return f"""\
DONNÉES FICTIVES — projet Hygie n° {project_id}
=============================================

Ces données sont SYNTHÉTIQUES. Elles ne décrivent aucune personne réelle : elles ont été générées par le
générateur de la plateforme (hygie.synth) pour une population fictive de {population} personnes sur
{years} année(s) à partir de {first_year} (graine {seed}), puis mises en forme par le code même qui construit la
vue réelle du projet. Elles ont donc exactement le schéma de la vue du projet (mêmes tables, colonnes, types,
dates généralisées au mois, clé de jointure CLE_DCI_JNT, pseudonymes BEN_NIR_PSA à 17 caractères) et des
distributions plausibles, mais aucun chiffre qui en est tiré n'a de valeur : ne publiez ni ne citez aucun
résultat obtenu sur elles.

Utilisez-les pour écrire et tester votre code (requête agrégée ou SQL DuckDB) hors de la plateforme ; une fois
le projet actif, le même code s'exécute sans changement sur la vue réelle, dans la plateforme, et seuls les
résultats agrégés qui passent le contrôle de divulgation en sortent.

Période du projet : {period}. Personnes retenues dans ces données fictives : {people}.
Contenu : parquet/<TABLE>.parquet et csv/<TABLE>.csv (UTF-8, séparateur virgule, dates AAAA-MM-JJ).

DUMMY DATA — Hygie project {project_id}
=====================================

These data are SYNTHETIC. They describe no real person: the platform's generator (hygie.synth) made a fictitious
population of {population} people over {years} year(s) from {first_year} (seed {seed}), and the very code that
builds the project's real view shaped them. They have exactly the project view's schema (same tables, columns,
types, dates generalised to the month, CLE_DCI_JNT join key, 17-character BEN_NIR_PSA pseudonyms) and plausible
distributions, but no figure drawn from them means anything: do not publish or quote results obtained on them.

Use them to write and test your code (aggregate request or DuckDB SQL) outside the platform; once the project is
active, the same code runs unchanged on the real view, inside the platform, and only aggregate results that
pass disclosure control leave it.

Project period: {period}. People selected in this dummy dataset: {people}.
Contents: parquet/<TABLE>.parquet and csv/<TABLE>.csv (UTF-8, comma-separated, dates YYYY-MM-DD).

Tables et colonnes / tables and columns:
{columns}
"""


# -- trying code on dummy data inside the platform ----------------------------------------------------------


@dataclass(frozen=True)
class DummyRun:
    """What a spec or SQL gives on the project's dummy view: synthetic, so shown as computed (capped)."""

    kind: str
    """'aggregate' or 'sql'."""
    columns: list[str]
    rows: list[dict[str, Any]]
    total_rows: int
    """Rows the query returned (``rows`` holds at most ``analysis_max_output_rows`` of them)."""
    seconds: float
    verdict: str | None
    """For a spec: what disclosure control would decide on such an output (release, review, refuse)."""
    suppressed: int | None
    """For a spec: cells disclosure control would suppress."""


def run_on_dummy(
    settings: Settings, project: Project, *, spec: AggregateSpec | None = None, sql: str | None = None
) -> DummyRun:
    """Run a spec or a SQL statement on the project's dummy view with the very checks, compiler, engine and
    limits the real view gets (:mod:`hygie.analysis.service`), so code that passes here runs unchanged there.

    A spec's output goes through disclosure control as on the real view, so the researcher sees its shape and
    which kind of cells get suppressed; a SQL output is shown as computed (synthetic: nothing to protect; on the
    real view it would wait for two output checkers).
    """
    if (spec is None) == (sql is None):
        raise DummyCodeRefused(N_("send exactly one of an aggregate spec or a SQL statement"))
    with dummy_view(settings, project) as (hub, copy, view), hub.session() as session:
        columns = {table: list(meta["columns"]) for table, meta in view.tables.items()}
        try:
            if spec is not None:
                year = Scope.model_validate(copy.scope).population.period_start.year
                keys = project_record_keys(hub, session, copy)
                threshold = disclosure_policy(hub, copy).threshold  # the project's, as on the real view
                plan = compile_aggregate(spec, columns, reference_year=year, record_keys=keys, threshold=threshold)
                query = plan.query
            else:
                assert sql is not None
                query = check_sql(sql, columns)
            run = DuckDBEngine(hub).run(copy, query, Limits.from_settings(settings))
        except (SQLRefused, SpecError, QueryStopped, CellKeyError) as exc:
            raise DummyCodeRefused(_said(exc)) from None
        cap = settings.analysis_max_output_rows
        if spec is not None:
            # Shown as the real view's output would be: dimension labels, rounded people, suppressed cells.
            protected = protect(output_table(plan, run.table), disclosure_policy(hub, copy))
            records = protected.rows()
            names = list(records[0]) if records else [*protected.dimensions, "people", "suppressed"]
            verdict: str | None = str(protected.verdict)
            suppressed: int | None = len(protected.suppressed)
        else:
            records = run.table.slice(0, cap).to_pylist()
            names, verdict, suppressed = list(run.table.column_names), None, None
        total = len(records) if spec is not None else run.table.num_rows
    rows = json.loads(json.dumps(records[:cap], default=str))
    return DummyRun(
        kind="aggregate" if spec is not None else "sql", columns=names, rows=rows, total_rows=total,
        seconds=round(run.seconds, 3), verdict=verdict, suppressed=suppressed,
    )  # fmt: skip
