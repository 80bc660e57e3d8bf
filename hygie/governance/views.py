# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Provisioning of minimised per-project views.

Activating a project materialises its view from the warehouse, with no bespoke extraction: only the approved
tables and columns, the approved population and period, gated columns generalised, opted-out citizens left out,
and every patient pseudonym re-keyed under the project's own key, so two projects' views cannot be joined.

Layout under ``<data dir>/projects/<id>``::

    views/<generation>/<TABLE>.parquet     one generation of the view, encrypted under the project's WRAP key
    views/<generation>/_owners.parquet      claim key -> project pseudonym, only when the view has detail tables
                                            but neither a care table nor a pseudonym column to tie them to people
                                            (never registered as a table: the opt-out filter reads it)
    membership/<generation>.parquet         hub pseudonyms of the people that generation included, encrypted
                                            under the hub-level ``view-membership`` key; kept after the project
                                            ends, so a citizen can be told which projects used their data
                                            (the durable record behind the ``citizen_use`` index)

Crash safety: a build writes a new generation directory first and publishes it only through its
:class:`ProjectView` row, committed by the caller. Readers open only catalogued ``ready`` generations, so a
crash mid-build leaves an orphan directory that nobody reads, removed by the next build of that project. Older
generations are marked ``superseded`` in the same transaction and their files removed once it commits.

Opt-out reaches a view at once, without a rebuild: :func:`open_view`, through which every query of a view runs
(aggregates, SQL, record keys), leaves out the people whose objection was recorded since the build started (see
:func:`excluded_since_build`); a build leaves out everyone objecting when it reads the opt-out register.
"""

from __future__ import annotations

import csv
import functools
import os
import re
import secrets
import shutil
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from hygie.audit.events import record
from hygie.governance.citizen_index import index_generation, uses_of
from hygie.governance.claimkeys import ClaimKeys
from hygie.governance.models import OptOut, Project, ProjectView, PseudonymRotationFile
from hygie.governance.policy import CLAIM_KEY, Scope
from hygie.hub import Hub
from hygie.i18n import N_
from hygie.identity.pseudonym import (
    PSEUDONYM_LENGTH,
    PseudonymVersionChanged,
    active_version,
    encode_pseudonyms,
    hold_version,
)
from hygie.ingest.contract import BENEFICIARY_TABLE, CARE_TABLE, DCIR_KEYS, DETAIL_TABLES, PSEUDONYM_COLUMN
from hygie.ingest.rules import stored_schema
from hygie.keys import KeyNotFound, KeyPurpose
from hygie.locks import exclusive
from hygie.warehouse.catalog import FileRow
from hygie.warehouse.encryption import ParquetCrypto
from hygie.warehouse.store import fsync_dir, sha256_file

MEMBERSHIP_KEY = "view-membership"
"""Hub-level WRAP key of the membership files: it outlives every project key."""
PROJECTS_DIR = "projects"
PROJECT_LABEL = b"hygie/project-pseudonym/v1|"
READY, SUPERSEDED, DESTROYED = "ready", "superseded", "destroyed"
ORPHAN_GRACE_SECONDS = 600
"""Unpublished view files younger than this may belong to a build awaiting its caller's commit: kept."""
OWNERS_FILE = "_owners.parquet"
"""Per generation, when needed: which person each claim key belongs to (see the layout above)."""
DRUGS_CSV = Path(__file__).resolve().parent.parent / "reference" / "drugs.csv"


class ViewError(Exception):
    """A view cannot be built or opened; the message says which project and what to do."""


def project_pseudonym_key(project_id: int) -> str:
    """Custody key (PSEUDONYM) that re-keys patient pseudonyms in this project's views."""
    return f"project-{project_id}-pseudonym"


def project_view_key(project_id: int) -> str:
    """Custody key (WRAP) under which this project's view files are encrypted."""
    return f"project-{project_id}-view"


def project_cellkey_key(project_id: int) -> str:
    """Custody key (PSEUDONYM) from which the project's record keys for disclosure control are derived."""
    return f"project-{project_id}-cellkey"


def project_dir(hub: Hub, project_id: int) -> Path:
    return hub.settings.data_dir / PROJECTS_DIR / str(project_id)


@cache
def _drug_atc() -> pa.Table:
    """PHA_PRS_C13 -> PHA_ATC_C07, from the drug referential (comment lines start with '#')."""
    with DRUGS_CSV.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    return pa.table(
        {
            "PHA_PRS_C13": pa.array([int(r["PHA_PRS_C13"]) for r in rows], pa.int64()),
            "PHA_ATC_C07": pa.array([r["PHA_ATC_C07"] for r in rows], pa.string()),
        }
    )


def rekey(hub: Hub, project_id: int, hub_pseudonyms: list[str]) -> list[str]:
    """Project pseudonyms of distinct hub pseudonyms: the first 17 base32 characters of
    HMAC(project key, label || hub pseudonym), in one custody call. Same key, same result: refreshes are stable."""
    macs = hub.custody.mac(
        project_pseudonym_key(project_id), [PROJECT_LABEL + p.encode("ascii") for p in hub_pseudonyms]
    )
    return encode_pseudonyms(macs)


# -- building ---------------------------------------------------------------------------------------------


_WRITES_QUEUED = 4
"""Tables waiting for the view's writer thread: bounds the memory held beyond the month being read."""


class _Writer:
    """The view's row ordering (a take), Parquet encoding, compression and encryption, on one background thread
    (they release the GIL) so that DuckDB reads and joins the next month meanwhile; one thread, so each file's
    writes keep their order."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, "hygie-view-writer")
        self._pending: deque[Future[None]] = deque()
        self._failed = threading.Event()

    def write(self, out: _Output, data: pa.Table, order: pa.Array | None = None) -> None:
        """Queue ``data`` (its rows taken in ``order`` first, when given) for ``out``."""
        if self._failed.is_set():
            self.drain()  # raises the failure at once: the build is lost, stop reading
        self._pending.append(self._pool.submit(self._write, out, data, order))
        while len(self._pending) > _WRITES_QUEUED:
            self._pending.popleft().result()

    def _write(self, out: _Output, data: pa.Table, order: pa.Array | None) -> None:
        if self._failed.is_set():
            return  # a write before this one failed: the build is lost
        try:
            out.write(data if order is None else data.take(order))
        except BaseException:
            self._failed.set()
            raise

    def drain(self) -> None:
        """Wait for every queued write; the first failure is raised."""
        while self._pending:
            self._pending.popleft().result()

    def stop(self) -> None:
        """Drop what is queued and wait for the write under way (the caller removes the files)."""
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True)


@dataclass
class _Output:
    """One encrypted Parquet file of the view being written."""

    path: Path
    crypto: ParquetCrypto
    writer: pq.ParquetWriter | None = None
    schema: pa.Schema | None = None
    rows: int = 0

    def write(self, data: pa.Table) -> None:
        if self.writer is None:
            self.schema = data.schema
            self.writer = pq.ParquetWriter(
                self.path,
                data.schema,
                compression="zstd",
                compression_level=1,
                encryption_properties=self.crypto.encryption_properties(),
            )
        if data.num_rows:
            self.writer.write_table(data.cast(self.schema), row_group_size=1_000_000)
            self.rows += data.num_rows

    def close(self) -> str:
        assert self.writer is not None, "every output gets at least one (possibly empty) write"
        self.writer.close()
        with self.path.open("rb+") as f:
            os.fsync(f.fileno())
        return sha256_file(self.path)


@dataclass
class _Plan:
    """What the scope asks for: the view's columns per table, in order, structural columns first."""

    scope: Scope
    pseudonym_version: int
    """Version of the hub pseudonym key the warehouse was keyed with when the build started."""
    columns: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, project: Project, pseudonym_version: int) -> _Plan:
        scope = Scope.model_validate(project.scope)
        problems = scope.gating_problems()
        if problems:
            raise ViewError(
                N_(
                    "project {project}: the approved scope is not provisionable: {problems}",
                    project=project.id,
                    problems="; ".join(problems),
                )
            )
        plan = cls(scope, pseudonym_version)
        for table, asked in scope.tables.items():
            structural = []
            if table in (CARE_TABLE, *DETAIL_TABLES):
                structural.append(CLAIM_KEY)  # care and details are joined on it; without it they are useless
            if table in (BENEFICIARY_TABLE, CARE_TABLE):
                structural.append(PSEUDONYM_COLUMN)
            plan.columns[table] = structural + [c for c in asked if c not in structural]
        return plan

    def data_columns(self, table: str) -> list[str]:
        return [c for c in self.columns.get(table, []) if c not in (CLAIM_KEY, PSEUDONYM_COLUMN)]

    def expr(self, table: str, column: str) -> str:
        """The SQL giving a warehouse column (of table alias ``t``) in its approved form."""
        form = self.scope.column_form(table, column)
        if form == "month":
            return f"CAST(date_trunc('month', t.{column}) AS DATE) AS {column}"
        if form != "exact":
            raise ViewError(
                N_(
                    "{table}.{column} needs its potential identifier declared; it is never written otherwise",
                    table=table,
                    column=column,
                )
            )
        return f"t.{column}"

    @property
    def needs_care(self) -> bool:
        return any(t in self.columns for t in (CARE_TABLE, *DETAIL_TABLES))

    @property
    def needs_owners(self) -> bool:
        """Detail rows that neither a care table nor a pseudonym column of the view ties to people."""
        return CARE_TABLE not in self.columns and any(
            PSEUDONYM_COLUMN not in self.columns[t] for t in DETAIL_TABLES if t in self.columns
        )


def _empty(table: str) -> pa.Table:
    return stored_schema(table).empty_table()


def _source(hub: Hub, session: Session, table: str, months: list[str] | None) -> ds.Dataset | pa.Table:
    """The warehouse table (restricted to some care months), or an empty table of its schema."""
    query = select(FileRow.path).where(FileRow.table_name == table)
    if months is not None:
        query = query.where(FileRow.care_month.in_(months))
    return _dataset(hub, table, [Path(p) for p in session.scalars(query.order_by(FileRow.id))])


def _dataset(hub: Hub, table: str, paths: list[Path]) -> ds.Dataset | pa.Table:
    """The warehouse files at ``paths`` (relative to the warehouse) as one dataset, or an empty table."""
    return hub.warehouse.dataset_of([hub.warehouse.directory / p for p in paths]) if paths else _empty(table)


def _months(start: date, end: date) -> list[str]:
    out = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def _opted_out(hub: Hub, session: Session, version: int) -> list[str]:
    """Hub pseudonyms (under ``version``) of citizens whose objection stands (withdrawn objections do not count)."""
    indexes = list(session.scalars(select(OptOut.person_index).where(OptOut.withdrawn_at.is_(None)).distinct()))
    if not indexes:
        return []
    return sorted(set(hub.vault(session).pseudonyms_of(indexes, version).values()))


def _population(hub: Hub, session: Session, con: duckdb.DuckDBPyConnection, plan: _Plan, project: Project) -> list[str]:
    """Sorted hub pseudonyms of the people the view covers."""
    pop = plan.scope.population
    con.register("ben", _source(hub, session, BENEFICIARY_TABLE, None))
    where = ["TRUE"]
    params: list[Any] = []
    if pop.age_min is not None:
        where.append("? - t.BEN_NAI_ANN >= ?")
        params += [pop.period_start.year, pop.age_min]
    if pop.age_max is not None:
        where.append("? - t.BEN_NAI_ANN <= ?")
        params += [pop.period_start.year, pop.age_max]
    if pop.sexes:
        where.append("list_contains(?::BIGINT[], t.BEN_SEX_COD)")
        params.append(pop.sexes)
    departements = pop.all_departements()
    if departements:
        where.append("list_contains(?::VARCHAR[], t.BEN_RES_DPT)")
        params.append(departements)
    # A person's newest beneficiary row holds their current demographics (re-deliveries add rows).
    query = f"""
        SELECT t.BEN_NIR_PSA AS psa FROM ben t WHERE {" AND ".join(where)}
        QUALIFY row_number() OVER (PARTITION BY t.BEN_NIR_PSA ORDER BY t.BEN_DTE_MAJ DESC NULLS LAST) = 1
    """
    people = con.sql(query, params=params).to_arrow_table().column("psa")
    coded = pop.drugs_atc or pop.ccam_acts or pop.exemption_codes
    if coded:
        people = pc.filter(people, pc.is_in(people, value_set=_coded_people(hub, session, con, plan)))
    if project.purpose not in hub.settings.opt_out_exempt_purposes:
        objected = pa.array(_opted_out(hub, session, plan.pseudonym_version), pa.string())
        if len(objected):
            people = pc.filter(people, pc.invert(pc.is_in(people, value_set=objected)))
    return sorted(people.to_pylist())


def _coded_people(hub: Hub, session: Session, con: duckdb.DuckDBPyConnection, plan: _Plan) -> pa.Array:
    """Hub pseudonyms of people with at least one care in the period matching a code criterion."""
    pop = plan.scope.population
    months = _months(pop.period_start, pop.period_end)
    period = "t.EXE_SOI_DTD BETWEEN ?::DATE AND ?::DATE"
    dates = [pop.period_start.isoformat(), pop.period_end.isoformat()]
    keys = " AND ".join(f"d.{k} = t.{k}" for k in DCIR_KEYS)
    parts: list[str] = []
    params: list[Any] = []
    con.register("prs", _source(hub, session, CARE_TABLE, months))
    if pop.exemption_codes:
        parts.append(f"SELECT t.BEN_NIR_PSA FROM prs t WHERE {period} AND list_contains(?::BIGINT[], t.EXO_MTF)")
        params += [*dates, pop.exemption_codes]
    if pop.drugs_atc:
        drugs = _drug_atc()
        atc = drugs.column("PHA_ATC_C07")
        wanted = functools.reduce(pc.or_, [pc.starts_with(atc, prefix) for prefix in pop.drugs_atc])
        c13 = pc.filter(drugs.column("PHA_PRS_C13"), wanted).to_pylist()
        con.register("pha", _source(hub, session, "ER_PHA_F", months))
        parts.append(
            f"SELECT t.BEN_NIR_PSA FROM pha d JOIN prs t ON {keys} "
            f"WHERE {period} AND list_contains(?::BIGINT[], d.PHA_PRS_C13)"
        )
        params += [*dates, c13]
    if pop.ccam_acts:
        con.register("cam", _source(hub, session, "ER_CAM_F", months))
        parts.append(
            f"SELECT t.BEN_NIR_PSA FROM cam d JOIN prs t ON {keys} "
            f"WHERE {period} AND list_contains(?::VARCHAR[], d.CAM_PRS_IDE)"
        )
        params += [*dates, pop.ccam_acts]
    query = " UNION ".join(parts)
    return con.sql(query, params=params).to_arrow_table().column(0).combine_chunks()


def _write_beneficiaries(
    hub: Hub, session: Session, con: duckdb.DuckDBPyConnection, plan: _Plan, out: _Output, writer: _Writer
) -> None:
    con.register("ben", _source(hub, session, BENEFICIARY_TABLE, None))
    selects = [f"p.pid AS {PSEUDONYM_COLUMN}"] + [
        plan.expr(BENEFICIARY_TABLE, c) for c in plan.data_columns(BENEFICIARY_TABLE)
    ]
    query = f"""
        SELECT {", ".join(selects)} FROM ben t JOIN pop p ON t.BEN_NIR_PSA = p.psa
        QUALIFY row_number() OVER (PARTITION BY t.BEN_NIR_PSA ORDER BY t.BEN_DTE_MAJ DESC NULLS LAST) = 1
        ORDER BY p.pid
    """
    writer.write(out, con.sql(query).to_arrow_table())


def _write_care(
    hub: Hub,
    session: Session,
    con: duckdb.DuckDBPyConnection,
    plan: _Plan,
    outputs: dict[str, _Output],
    writer: _Writer,
    owners: _Output | None = None,
) -> None:
    """Care rows and their details, one care month at a time (memory stays bounded by a month of claims).

    Claim keys (:mod:`hygie.governance.claimkeys`) are drawn for this build month by month; each month's rows are
    written in claim-key order, which shuffles them (rows are put in a random order and given the month's keys in
    ascending order). ``owners``, when given, receives each claim key with its person (the opt-out filter's link
    for detail-only views). The warehouse's files are listed once, before the first month is read: a batch
    accepted during the build is in none of its months, never in some.
    """
    pop = plan.scope.population
    dates = [pop.period_start.isoformat(), pop.period_end.isoformat()]
    period = "t.EXE_SOI_DTD BETWEEN ?::DATE AND ?::DATE"
    months = _months(pop.period_start, pop.period_end)
    details = [t for t in outputs if t in DETAIL_TABLES]
    files = _listing(session, [CARE_TABLE, *details], months)
    claims = ClaimKeys()
    shuffle = np.random.default_rng(secrets.randbits(128))
    fetch = [f"t.{k}" for k in DCIR_KEYS] + ["p.pid AS _pid"]
    fetch += [plan.expr(CARE_TABLE, c) for c in plan.data_columns(CARE_TABLE)]
    joined = " AND ".join(f"t.{k} = c.{k}" for k in DCIR_KEYS)
    for month in months:
        con.register("prs", _dataset(hub, CARE_TABLE, files.get((CARE_TABLE, month), [])))
        care = con.sql(
            f"SELECT {', '.join(fetch)} FROM prs t JOIN pop p ON t.BEN_NIR_PSA = p.psa WHERE {period}", params=dates
        ).to_arrow_table()
        # Row ``order[i]`` gets the i-th smallest key: the rows in key order are ``care.take(order)``, taken on
        # the writer's thread.
        order = shuffle.permutation(care.num_rows)
        keys = np.empty(care.num_rows, dtype=np.int64)
        keys[order] = claims.draw(care.num_rows)
        care = care.append_column(CLAIM_KEY, pa.array(keys))
        con.register("c", care)
        if CARE_TABLE in outputs:
            written = {c: care.column("_pid" if c == PSEUDONYM_COLUMN else c) for c in plan.columns[CARE_TABLE]}
            writer.write(outputs[CARE_TABLE], pa.table(written), order=pa.array(order))
        for table in details:
            con.register("det", _dataset(hub, table, files.get((table, month), [])))
            selects = [
                _from_care(c) if c in (CLAIM_KEY, PSEUDONYM_COLUMN) else plan.expr(table, c)
                for c in plan.columns[table]
            ]
            query = f"SELECT {', '.join(selects)} FROM det t JOIN c ON {joined} ORDER BY c.{CLAIM_KEY}"
            writer.write(outputs[table], con.sql(query).to_arrow_table())
        if owners is not None:
            writer.write(owners, con.sql(f"SELECT c.{CLAIM_KEY}, c._pid AS {PSEUDONYM_COLUMN} FROM c").to_arrow_table())
        con.unregister("c")


def _listing(session: Session, tables: list[str], months: list[str]) -> dict[tuple[str, str | None], list[Path]]:
    """The warehouse's files of these tables and care months, by (table, month), in the catalog's order."""
    rows = session.execute(
        select(FileRow.table_name, FileRow.care_month, FileRow.path)
        .where(FileRow.table_name.in_(tables), FileRow.care_month.in_(months))
        .order_by(FileRow.id)
    )
    out: dict[tuple[str, str | None], list[Path]] = {}
    for table, month, path in rows:
        out.setdefault((table, month), []).append(Path(path))
    return out


def _from_care(column: str) -> str:
    """A column of the month's selected care rows (table ``c``, already in approved form)."""
    return f"c._pid AS {PSEUDONYM_COLUMN}" if column == PSEUDONYM_COLUMN else f"c.{column}"


@contextmanager
def _project_lock(hub: Hub, project_id: int) -> Iterator[None]:
    """One build or destruction at a time per project in this hub (orphan sweeping relies on it)."""
    lock_dir = hub.settings.data_dir / "locks"
    lock_dir.mkdir(exist_ok=True)
    with exclusive(lock_dir / f"project-{project_id}.lock"):
        yield


def _sweep(hub: Hub, session: Session, project_id: int) -> int:
    """Remove generation directories and membership files no committed row publishes (what a crash, a rollback
    or a missed clean-up left) and return the next free generation number.

    Files of a generation number no row has taken yet may belong to a build that has finished writing but whose
    caller has not committed yet (the project lock covers writing, not the caller's commit): those are left
    alone until they are ``ORPHAN_GRACE_SECONDS`` old, and new builds number past them. Membership files of every
    catalogued generation are kept, whatever its status (they are the record of who was included).
    """
    base = project_dir(hub, project_id)
    rows = session.scalars(select(ProjectView).where(ProjectView.project_id == project_id)).all()
    ready = {r.generation for r in rows if r.status == READY}
    catalogued = max((r.generation for r in rows), default=0)
    kept = {r.membership_file for r in rows}
    newest = catalogued
    now = time.time()
    candidates = []
    if (base / "views").is_dir():
        candidates += [(p, p.name) for p in (base / "views").iterdir()]
    if (base / "membership").is_dir():
        candidates += [(p, p.name.removesuffix(".parquet")) for p in (base / "membership").iterdir()]
    # A hub pseudonym rotation's files (re-written, being written, or replaced but still in their grace period):
    # the rotation publishes or removes them itself.
    rotating = set(session.scalars(select(PseudonymRotationFile.old_path)))
    for path, name in candidates:
        if path.is_file() and (
            re.fullmatch(r"\d+\.v\d+(\.parquet\.tmp)?", name)
            or path.relative_to(hub.settings.data_dir).as_posix() in rotating
        ):
            continue
        generation = int(name) if name.isdigit() else 0
        if path.is_dir() and generation in ready:
            continue
        if path.is_file() and path.relative_to(hub.settings.data_dir).as_posix() in kept:
            continue
        if generation > catalogued and now - _newest_mtime(path) < ORPHAN_GRACE_SECONDS:
            newest = max(newest, generation)  # perhaps a build awaiting its commit: number past it
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return newest + 1


def _newest_mtime(path: Path) -> float:
    times = [path.stat().st_mtime]
    if path.is_dir():
        times += [child.stat().st_mtime for child in path.iterdir()]
    return max(times)


def _live_key(hub: Hub, name: str, purpose: KeyPurpose, project_id: int) -> None:
    info = hub.custody.ensure(name, purpose)
    if info.current_version is None:
        raise ViewError(
            N_(
                "project {project}: key {key} was destroyed when the project ended; an ended project cannot be "
                "provisioned again (submit a new project)",
                project=project_id,
                key=repr(name),
            )
        )


def _write_view_duckdb(
    hub: Hub, session: Session, plan: _Plan, project: Project, target: Path, view_crypto: ParquetCrypto
) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Write the view's files into ``target`` with DuckDB; return its people (hub pseudonyms) and tables."""
    con = duckdb.connect(config={"temp_directory": ""})  # decrypted rows never spill to disk
    writer = _Writer()
    try:
        people = _population(hub, session, con, plan, project)
        pids = rekey(hub, project.id, people)
        con.register("pop", pa.table({"psa": pa.array(people, pa.string()), "pid": pa.array(pids, pa.string())}))
        outputs = {t: _Output(target / f"{t}.parquet", view_crypto) for t in plan.columns}
        owners = _Output(target / OWNERS_FILE, view_crypto) if plan.needs_owners else None
        if BENEFICIARY_TABLE in outputs:
            _write_beneficiaries(hub, session, con, plan, outputs[BENEFICIARY_TABLE], writer)
        if plan.needs_care:
            _write_care(hub, session, con, plan, outputs, writer, owners)
        writer.drain()
    finally:
        writer.stop()  # on failure, nothing is left writing into the directory the caller removes
        con.close()
    if owners is not None:
        owners.close()
    tables = {}
    for table, out in outputs.items():
        digest = out.close()
        tables[table] = {
            "rows": out.rows,
            "columns": plan.columns[table],
            "file": out.path.relative_to(hub.settings.data_dir).as_posix(),
            "sha256": digest,
        }
    return people, tables


def build_view(hub: Hub, session: Session, project: Project, *, actor: str) -> ProjectView:
    """Materialise (first activation) or refresh the project's view; the caller commits.

    No access check here: the project lifecycle decides when a view may be built.
    """
    started = time.perf_counter()
    plan = _Plan.of(project, active_version(session))
    _live_key(hub, project_pseudonym_key(project.id), KeyPurpose.PSEUDONYM, project.id)
    _live_key(hub, project_view_key(project.id), KeyPurpose.WRAP, project.id)
    view_crypto = ParquetCrypto(hub.custody, master_key=project_view_key(project.id))
    membership_crypto = ParquetCrypto(hub.custody, master_key=MEMBERSHIP_KEY)
    with _project_lock(hub, project.id):
        generation = _sweep(hub, session, project.id)
        base = project_dir(hub, project.id)
        target = base / "views" / str(generation)
        target.mkdir(parents=True, exist_ok=False)
        (base / "membership").mkdir(exist_ok=True)
        membership_path = base / "membership" / f"{generation}.parquet"
        try:
            if hub.settings.engine == "spark":  # the same view, built by Spark (hygie.governance.spark_views)
                from hygie.governance.spark_views import write_view_spark

                people, tables = write_view_spark(hub, session, plan, project, target, view_crypto, actor=actor)
            else:
                people, tables = _write_view_duckdb(hub, session, plan, project, target, view_crypto)
            members = _Output(membership_path, membership_crypto)
            members.write(pa.table({PSEUDONYM_COLUMN: pa.array(people, pa.string())}))
            members.close()
            fsync_dir(target)
            fsync_dir(membership_path.parent)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            membership_path.unlink(missing_ok=True)
            raise
        try:
            # The membership file and the citizen index rows below are keyed with this version: if a rotation
            # switched the hub to another while the view was read, they would name nobody.
            hold_version(session, plan.pseudonym_version)
        except PseudonymVersionChanged:
            shutil.rmtree(target, ignore_errors=True)
            membership_path.unlink(missing_ok=True)
            raise ViewError(
                N_(
                    "project {project}: the hub pseudonym key was rotated while the view was being built; nothing "
                    "was kept: build it again",
                    project=project.id,
                )
            ) from None
        older = session.scalars(
            select(ProjectView).where(ProjectView.project_id == project.id, ProjectView.status == READY)
        ).all()
        for row in older:
            row.status = SUPERSEDED
        view = ProjectView(
            project_id=project.id,
            generation=generation,
            scope_version=project.scope_version,
            status=READY,
            built_at=datetime.now(UTC),
            build_seconds=round(time.perf_counter() - started, 3),
            people=len(people),
            tables=tables,
            membership_file=membership_path.relative_to(hub.settings.data_dir).as_posix(),
            pseudonym_version=plan.pseudonym_version,
        )
        session.add(view)
        index_generation(hub, session, project.id, generation, people)  # "who used my data" reads this index
        record(
            session,
            actor=actor,
            action="project.view.build",
            object=f"project:{project.id}",
            project_id=project.id,
            purpose=project.purpose,
            detail={
                "generation": generation,
                "scope_version": project.scope_version,
                "people": len(people),
                "rows": {t: v["rows"] for t, v in tables.items()},
                "superseded": [r.generation for r in older],
                "build_seconds": view.build_seconds,
            },
        )
    _after_transaction(session, hub, project.id, remove_on_commit=[r.generation for r in older], new=generation)
    return view


def _after_transaction(session: Session, hub: Hub, project_id: int, *, remove_on_commit: list[int], new: int) -> None:
    """Once the caller commits, the superseded generations' files go; if it rolls back, the new one's do.
    Either clean-up missed (a crash) is done by the next build's sweep."""
    base = project_dir(hub, project_id)

    def committed(_session: Session) -> None:
        event.remove(session, "after_rollback", rolled_back)
        for generation in remove_on_commit:
            shutil.rmtree(base / "views" / str(generation), ignore_errors=True)

    def rolled_back(_session: Session) -> None:
        event.remove(session, "after_commit", committed)
        shutil.rmtree(base / "views" / str(new), ignore_errors=True)
        (base / "membership" / f"{new}.parquet").unlink(missing_ok=True)

    event.listen(session, "after_commit", committed, once=True)
    event.listen(session, "after_rollback", rolled_back, once=True)


# -- destroying, opening, reporting ---------------------------------------------------------------------


def destroy_view(hub: Hub, session: Session, project: Project, *, actor: str, keep_key: bool = False) -> None:
    """Delete the view files and mark every generation destroyed; unless ``keep_key``, destroy both project keys
    (crypto-shredding: a copy of the files taken earlier, e.g. by a backup, can no longer be read).

    ``keep_key`` is for a change of scope sending an active project back to review: pseudonyms stay stable when
    it is activated again. Membership files stay (the record of who was included). Files are deleted now, not
    at commit: destruction must not wait on the caller, and a view whose files are gone refuses to open.
    """
    with _project_lock(hub, project.id):
        rows = session.scalars(
            select(ProjectView).where(ProjectView.project_id == project.id, ProjectView.status != DESTROYED)
        ).all()
        for row in rows:
            row.status = DESTROYED
        destroyed_keys = []
        if not keep_key:
            for name in (
                project_pseudonym_key(project.id),
                project_view_key(project.id),
                project_cellkey_key(project.id),
            ):
                try:
                    if hub.custody.info(name).current_version is not None:
                        hub.custody.destroy(name)
                        destroyed_keys.append(name)
                except KeyNotFound:
                    pass  # never built: nothing to shred
        shutil.rmtree(project_dir(hub, project.id) / "views", ignore_errors=True)
        hub.view_cache.drop_project(project.id)  # this process's decrypted copy goes with the files
        record(
            session,
            actor=actor,
            action="project.view.destroy",
            object=f"project:{project.id}",
            project_id=project.id,
            purpose=project.purpose,
            detail={"generations": sorted(r.generation for r in rows), "keys_destroyed": destroyed_keys},
        )


def newest_ready(session: Session, project_id: int) -> ProjectView | None:
    """The project's newest view ready for use, if any."""
    return session.scalars(
        select(ProjectView)
        .where(ProjectView.project_id == project_id, ProjectView.status == READY)
        .order_by(ProjectView.generation.desc())
        .limit(1)
    ).first()


def open_view(
    hub: Hub, session: Session, project: Project, *, limits: dict[str, str | int] | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with one view per table of the project's newest ready generation, without
    the rows of people who objected since it was built (:func:`excluded_since_build`).

    No temp directory (nothing decrypted spills to disk); once the tables are registered, external access is
    switched off and the configuration locked, so queries cannot read or write files of their own. Python
    replacement scans are off: a query cannot name a Python object (an unfiltered dataset) that is not one of
    the registered tables. ``limits`` (e.g. ``memory_limit``, ``threads``) are set at connection time, before the
    lock: the sandbox of one run. The excluded rows are filtered out inside each registered dataset: no table,
    view text or plan of the connection holds them or lists who was left out.
    """
    view = newest_ready(session, project.id)
    if view is None:
        hub.view_cache.drop_project(project.id)  # destroyed by another process: its decrypted copy goes here too
        raise ViewError(
            N_(
                "project {project} has no ready view: it is provisioned when the project is activated",
                project=project.id,
            )
        )
    crypto = ParquetCrypto(hub.custody, master_key=project_view_key(project.id))
    paths: dict[str, Path] = {}
    for table, meta in view.tables.items():
        path = hub.settings.data_dir / meta["file"]
        if not path.exists():
            hub.view_cache.drop_project(project.id)
            raise ViewError(
                N_(
                    "project {project}: file {file} of view generation {generation} is missing; "
                    "rebuild the view (build_view) or run `hygie warehouse verify`",
                    project=project.id,
                    file=meta["file"],
                    generation=view.generation,
                )
            )
        paths[table] = path
    datasets = {t: ds.dataset(str(p), format=crypto.file_format()) for t, p in paths.items()}
    _require_filterable(hub, view)
    excluded = excluded_since_build(hub, session, project, view)
    held = hub.view_cache.tables(
        _cache_key(project.id, view.generation, paths),
        project.id,
        estimate=lambda: sum(_decoded_size(p, crypto) for p in paths.values()),
        load=lambda: {t: d.to_table() for t, d in datasets.items()},
    )
    # Decrypted once and held in memory when it fits (the cache), else streamed from the encrypted files.
    sources: dict[str, ds.Dataset | pa.Table]
    if excluded:
        readable = datasets if held is None else {t: ds.dataset(held[t]) for t in datasets}
        sources = {t: _without_excluded(hub, view, t, d, crypto, excluded) for t, d in readable.items()}
    else:
        sources = dict(datasets if held is None else held)
    con = duckdb.connect(config={**(limits or {}), "temp_directory": "", "python_enable_replacements": False})
    for table, source in sources.items():
        con.register(table, source)
    del sources, held
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def _cache_key(project_id: int, generation: int, paths: dict[str, Path]) -> tuple[object, ...]:
    """A view's files as they are now: a file rewritten or replaced since (another inode, size or time) is another
    entry of the cache, never the contents read before."""
    files = []
    for table, path in sorted(paths.items()):
        st = path.stat()
        files.append((table, str(path), st.st_ino, st.st_size, st.st_mtime_ns))
    return (project_id, generation, tuple(files))


def _decoded_size(path: Path, crypto: ParquetCrypto) -> int:
    """Bytes of the file's columns once decoded, from its footer (row groups' uncompressed sizes): known before
    any row is decrypted."""
    meta = pq.ParquetFile(str(path), decryption_properties=crypto.decryption_properties()).metadata
    return sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))


def projects_including(hub: Hub, session: Session, hub_pseudonym: str) -> list[int]:
    """Ids of the projects any of whose view generations included this person.

    One indexed query (:mod:`hygie.governance.citizen_index`); the membership files of generations the index
    lacks (built before it existed) are read one filtered scan each, so the answer is complete either way.
    """
    if len(hub_pseudonym) != PSEUDONYM_LENGTH:
        # Never "nobody used your data" because a record is damaged: say it cannot be answered.
        raise ViewError(N_("this person's hub pseudonym is malformed; the answer cannot be given (check the vault)"))
    uses = uses_of(hub, session, hub_pseudonym)
    found = set(uses.projects)
    crypto: ParquetCrypto | None = None  # only for generations the index lacks (none, once it is rebuilt)
    for project_id, membership in uses.unindexed:
        if project_id in found:
            continue
        if crypto is None:
            crypto = ParquetCrypto(hub.custody, master_key=MEMBERSHIP_KEY)
        path = hub.settings.data_dir / membership
        if not path.exists():
            raise ViewError(
                N_(
                    "membership file {file} of project {project} is missing; restore it from backup",
                    file=membership,
                    project=project_id,
                )
            )
        dataset = ds.dataset(str(path), format=crypto.file_format())
        if dataset.count_rows(filter=pc.field(PSEUDONYM_COLUMN) == hub_pseudonym):
            found.add(project_id)
    return sorted(found)


def view_summary(session: Session, project: Project) -> dict[str, Any] | None:
    """Counts only: tables, columns, rows, people, when and which generation. None before the first build."""
    view = newest_ready(session, project.id)
    if view is None:
        return None
    return {
        "generation": view.generation,
        "scope_version": view.scope_version,
        "built_at": view.built_at.isoformat(),
        "build_seconds": view.build_seconds,
        "people": view.people,
        "tables": {t: {"rows": m["rows"], "columns": list(m["columns"])} for t, m in view.tables.items()},
    }


# -- opt-out since the build ----------------------------------------------------------------------------


_objectors: dict[tuple[str, int, int], str | None] = {}
"""(data dir, hub pseudonym key version, opt-out id) -> the objector's hub pseudonym (None: not in the vault).
Process memory only, so a query does not decrypt vault records again for an objection it has already resolved."""
_claims: dict[tuple[str, int, int], tuple[frozenset[str], pa.Array]] = {}
"""(data dir, project, generation) -> (excluded project pseudonyms, their claim keys in that generation)."""
_exclusion_lock = threading.Lock()


def excluded_since_build(hub: Hub, session: Session, project: Project, view: ProjectView) -> frozenset[str]:
    """Project pseudonyms of the people whose objection stands and was recorded too late for ``view``'s build to
    be sure to have applied it: since the build started, less ``opt_out_margin_seconds`` (an objection recorded
    earlier was committed before the build read the opt-out register, so its rows are not in the view).

    Computed from the opt-out register at each query, never stored: nothing lists who objected, and a withdrawn
    objection stops applying at once (rows the build left out come back only with the next build). Empty for
    purposes the opt-out does not apply to (``opt_out_exempt_purposes``).
    """
    if project.purpose in hub.settings.opt_out_exempt_purposes:
        return frozenset()
    built = view.built_at if view.built_at.tzinfo else view.built_at.replace(tzinfo=UTC)
    since = built.astimezone(UTC) - timedelta(seconds=view.build_seconds + hub.settings.opt_out_margin_seconds)
    rows = session.execute(
        select(OptOut.id, OptOut.person_index).where(OptOut.withdrawn_at.is_(None), OptOut.created_at >= since)
    ).all()
    if not rows:
        return frozenset()
    # The view holds project pseudonyms of hub pseudonyms under the version it was built with, whatever is
    # active now: the objectors are re-keyed through that same version.
    base, version = str(hub.settings.data_dir), view.pseudonym_version
    with _exclusion_lock:
        missing = [(i, index) for i, index in rows if (base, version, i) not in _objectors]
    if missing:
        found = hub.vault(session).pseudonyms_of(sorted({index for _, index in missing}), version)
        with _exclusion_lock:
            for i, index in missing:
                _objectors[(base, version, i)] = found.get(index)
    with _exclusion_lock:
        hub_pseudonyms = sorted({p for i, _ in rows if (p := _objectors.get((base, version, i))) is not None})
    return frozenset(rekey(hub, project.id, hub_pseudonyms)) if hub_pseudonyms else frozenset()


def _owners_path(hub: Hub, view: ProjectView) -> Path:
    """The file tying this generation's claim keys to people: its care table, or else its owners file."""
    if CARE_TABLE in view.tables:
        return hub.settings.data_dir / str(view.tables[CARE_TABLE]["file"])
    return project_dir(hub, view.project_id) / "views" / str(view.generation) / OWNERS_FILE


def _require_filterable(hub: Hub, view: ProjectView) -> None:
    """Refuse a generation whose rows objections could not reach, whether or not anyone has objected: a refusal
    that began with the first objection would tell the researcher that someone objected, and when."""
    for table, meta in view.tables.items():
        columns = meta["columns"]
        if PSEUDONYM_COLUMN in columns:
            continue
        if CLAIM_KEY not in columns:
            raise ViewError(
                N_(
                    "project {project}: table {table} of the view has no column tying rows to people",
                    project=view.project_id,
                    table=table,
                )
            )
        if not _owners_path(hub, view).exists():
            raise ViewError(
                N_(
                    "project {project}: view generation {generation} cannot tie its detail rows to "
                    "people, so objections made since it was built could not be applied; refresh the view",
                    project=view.project_id,
                    generation=view.generation,
                )
            )


def _excluded_claims(hub: Hub, view: ProjectView, crypto: ParquetCrypto, excluded: frozenset[str]) -> pa.Array:
    """Claim keys of the excluded people's care in this generation (detail tables are tied to people by them),
    from the view's care table or, without one, from the generation's owners file."""
    key = (str(hub.settings.data_dir), view.project_id, view.generation)
    with _exclusion_lock:
        cached = _claims.get(key)
    if cached is not None and cached[0] == excluded:
        return cached[1]
    path = _owners_path(hub, view)
    owners = ds.dataset(str(path), format=crypto.file_format())
    found = owners.to_table(columns=[CLAIM_KEY], filter=pc.field(PSEUDONYM_COLUMN).isin(sorted(excluded)))
    claims = found.column(CLAIM_KEY).combine_chunks()
    with _exclusion_lock:
        _claims[key] = (excluded, claims)
    return claims


def _without_excluded(
    hub: Hub, view: ProjectView, table: str, dataset: ds.Dataset, crypto: ParquetCrypto, excluded: frozenset[str]
) -> ds.Dataset:
    """The table's rows without the excluded people's: by pseudonym, or by claim key for detail rows."""
    columns = list(view.tables[table]["columns"])
    if PSEUDONYM_COLUMN in columns:
        person = pc.field(PSEUDONYM_COLUMN)
        return dataset.filter(person.is_null() | ~person.isin(sorted(excluded)))
    if CLAIM_KEY in columns:
        claims = _excluded_claims(hub, view, crypto, excluded)
        return dataset.filter(~pc.field(CLAIM_KEY).isin(claims)) if len(claims) else dataset
    raise ViewError(
        N_(
            "project {project}: table {table} of the view has no column tying rows to people",
            project=view.project_id,
            table=table,
        )
    )
