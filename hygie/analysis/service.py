# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Analyses: submit, run, protect, release through the airlock, download. Every step is on the record.

Nothing leaves as rows. An aggregate's output passes disclosure control (``hygie.disclosure.protect``) with people
counts and record keys the platform computed; it is released automatically only when every check passes. SQL
outputs, and aggregates the checks cannot clear, wait in the airlock for two independent output checkers
(reviewers or the DPO; never the author nor a member of the project). Only released outputs can be read or
downloaded, and only by the project's members through ``require_view_access``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select
from sqlalchemy.orm import Session

from hygie.analysis.cellkeys import RKEY_TABLE, CellKeyError, project_record_keys
from hygie.analysis.codelists import code_lists
from hygie.analysis.compile import AggregatePlan, SpecError, compile_aggregate, output_table
from hygie.analysis.contributors import split_members
from hygie.analysis.dprelease import DPPlan, close_charge, compile_dp
from hygie.analysis.dprelease import release as dp_release
from hygie.analysis.engine import CompiledQuery, Engine, Limits, QueryStopped, engine_for
from hygie.analysis.models import AnalysisJob, AnalysisRelease, ReleaseDecision
from hygie.analysis.sealing import OutputShredded, open_rows, seal_rows
from hygie.analysis.spec import AggregateSpec
from hygie.analysis.sqlcheck import SQLRefused, check_sql
from hygie.analysis.worker import Workers, workers_for
from hygie.audit import Outcome, record
from hygie.disclosure import DisclosurePolicy, ProtectedOutput, Verdict, protect
from hygie.governance.access import require_view_access
from hygie.governance.accounts import Actor
from hygie.governance.accounts import Scope as TokenScope
from hygie.governance.errors import Conflict, Denied, Invalid, NotFound
from hygie.governance.models import Account, Project, ProjectMember, ProjectView
from hygie.governance.policy import CLAIM_KEY, Role, reviewing_roles
from hygie.governance.policy import Scope as ProjectScope
from hygie.governance.privacy import DP, BudgetError, refund, reserve, settle
from hygie.governance.views import newest_ready
from hygie.hub import Hub
from hygie.i18n import N_
from hygie.ingest.contract import PSEUDONYM_COLUMN
from hygie.logging import where
from hygie.tabular import write_dict_csv
from hygie.vocabulary import RELEASE_STATUS, ROLE, word

QUEUED, RUNNING, SUCCEEDED, FAILED, REFUSED = "queued", "running", "succeeded", "failed", "refused"
RELEASED, PENDING, REJECTED = "released", "pending", "rejected"
MIN_REASON = 10
log = logging.getLogger("hygie.analysis")
ROW_LEVEL_COLUMNS = (PSEUDONYM_COLUMN, CLAIM_KEY)

# -- what a project's members see of a job (hygie.portal.routes.analysis, the public register) ----------------------
# Nothing that depends on the data leaves before release: after its text is accepted, a job shows ``running`` until it
# becomes visible as ``released`` or ``withheld``. Withheld covers, alike, an output awaiting checkers, one they
# rejected, one the checks refused, a run stopped at a limit and a run that failed: which one is for the output
# checkers, the DPO and the audit record. Only ``refused`` (before anything ran, from the text alone) says why.
SHOWN_RUNNING, SHOWN_RELEASED, SHOWN_WITHHELD, SHOWN_REFUSED = "running", "released", "withheld", "refused"
WITHHELD_MESSAGE = N_(
    "no output of this analysis is released: it awaits the output checkers, or it was refused, stopped at a limit or "
    "failed while reading the data; which one is not shown, because it could depend on the data (the output checkers "
    "and the DPO see the reason). Test the query on the project's dummy data; a released output appears here"
)


@dataclass(frozen=True)
class ShownJob:
    """A job as its project's members (and the public register) see it: no count, size, duration or cost."""

    status: str
    finished_at: datetime | None
    """When the job became visible as finished: its submission plus a whole number of quanta."""
    message: str | None


COMMIT_GUARD_FRACTION = 0.2
"""A run shows as finished at the first quantum boundary at least this fraction of a quantum after its
``finished_at`` (set just before the commit that ends it), so the commit lands before the boundary and the moment the
job flips from ``running`` is the boundary itself, not the data-dependent end of its commit."""


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def shown_job(
    job: AnalysisJob, release: AnalysisRelease | None, quantum: float, now: datetime | None = None
) -> ShownJob:
    """What a job shows its project: refusals in the request (from the text alone) at once, with their reason;
    everything else ``running`` until the first multiple of ``quantum`` seconds after submission that follows the
    commit ending the run (``finished_at``, set at that commit, plus :data:`COMMIT_GUARD_FRACTION` of a quantum; only
    committed states are read: its end in a worker also tells when the jobs queued before it ended), then
    ``released``, ``withheld`` (the same message whatever the reason) or, for a query invalid on the view's schema,
    ``refused``."""
    status, visible = shown_state(
        job.status,
        job.started_at,
        job.submitted_at,
        job.finished_at,
        None if release is None else release.status,
        quantum,
        now,
    )
    if status == SHOWN_REFUSED:
        return ShownJob(SHOWN_REFUSED, visible, job.error_said)
    return ShownJob(status, visible, WITHHELD_MESSAGE if status == SHOWN_WITHHELD else None)


def shown_state(
    status: str,
    started_at: datetime | None,
    submitted_at: datetime,
    finished_at: datetime | None,
    release_status: str | None,
    quantum: float,
    now: datetime | None = None,
) -> tuple[str, datetime | None]:
    """:func:`shown_job`'s status and visible end from the columns it reads (no message): for lists read as plain
    rows, without loading the job and its release."""
    if status == REFUSED and started_at is None:  # decided from the text alone, in the request
        return SHOWN_REFUSED, finished_at
    if status in (QUEUED, RUNNING) or finished_at is None:
        return SHOWN_RUNNING, None
    submitted, finished = _aware(submitted_at), _aware(finished_at)
    visible = finished
    if quantum > 0:  # finished_at is set just before the commit; the guard keeps the boundary after the commit
        guard = COMMIT_GUARD_FRACTION * quantum
        quanta = max(1, math.ceil(((finished - submitted).total_seconds() + guard) / quantum))
        visible = submitted + timedelta(seconds=quanta * quantum)
    if _aware(now or _now()) < visible:
        return SHOWN_RUNNING, None
    if status == REFUSED:  # invalid on the view's schema, found while planning: the text's fault, said as such
        return SHOWN_REFUSED, visible
    if release_status == RELEASED:
        return SHOWN_RELEASED, visible
    return SHOWN_WITHHELD, visible


def disclosure_policy(hub: Hub, project: Project) -> DisclosurePolicy:
    """The platform's numbers, tightened by the project's own threshold (never loosened)."""
    s = hub.settings
    return DisclosurePolicy(
        threshold=s.disclosure_threshold,
        max_cells=s.disclosure_max_cells,
        protection_width=s.disclosure_protection_width,
        magnitude_noise=s.disclosure_magnitude_noise,
        dominance_p=s.disclosure_dominance_p,
        rounding_base=s.disclosure_rounding_base,
    ).tightened_by(project.threshold)


@dataclass(frozen=True)
class Download:
    content: bytes
    media_type: str
    filename: str


def _now() -> datetime:
    return datetime.now(UTC)


def _round(value: object) -> object:
    return round(value, 2) if isinstance(value, float) else value


class Analyses:
    def __init__(self, hub: Hub, session: Session, engine: Engine | None = None, *, background: bool = False) -> None:
        self.hub = hub
        self.session = session
        self.engine = engine or engine_for(hub)
        self.background = background
        """Run submissions in the hub's worker pool and return them queued (the API); else run them before
        returning (scripts, benchmarks)."""

    # -- recording ----------------------------------------------------------------------------------------

    def _record(self, actor: Actor, action: str, project: Project | None, object: str,
                detail: dict[str, Any], outcome: Outcome = Outcome.OK) -> None:  # fmt: skip
        record(
            self.session,
            actor=actor.ref,
            role=actor.role_name,
            action=action,
            outcome=outcome,
            object=object,
            project_id=project.id if project else None,
            purpose=project.purpose if project else None,
            detail=detail,
        )

    # -- submitting and running ---------------------------------------------------------------------------

    def submit_aggregate(self, actor: Actor, project_id: int, spec: AggregateSpec) -> AnalysisJob:
        text = spec.model_dump_json(by_alias=True, exclude_none=True)
        return self._submit(actor, project_id, "aggregate", text, spec)

    def submit_sql(self, actor: Actor, project_id: int, sql: str) -> AnalysisJob:
        if not sql.strip():
            raise Invalid(N_("the SQL is empty: send one SELECT statement"))
        return self._submit(actor, project_id, "sql", sql, None)

    def _submit(self, actor: Actor, project_id: int, kind: str, text: str, spec: AggregateSpec | None) -> AnalysisJob:
        project = require_view_access(self.session, self.hub.settings, actor, project_id)
        assert actor.account_id is not None
        job = AnalysisJob(project_id=project.id, author_id=actor.account_id, kind=kind, text=text, status=QUEUED,
                          submitted_at=_now())  # fmt: skip
        self.session.add(job)
        self.session.flush()
        workers = workers_for(self.hub) if self.background else None
        if workers is not None:  # this live process's, while it checks it (hygie.analysis.worker)
            workers.hold(job.id)
        try:
            self._record(actor, "analysis.submit", project, f"analysis:{job.id}", {"kind": kind, "job": job.id})
            self.session.commit()  # the job exists, and is on the record, before anything runs
            self._check_and_queue(actor, project, job, spec, workers)
        finally:
            if workers is not None:
                workers.let_go(job.id)
        if workers is not None and job.queued_at is not None:
            workers.wake()
        return job

    def _check_and_queue(
        self, actor: Actor, project: Project, job: AnalysisJob, spec: AggregateSpec | None, workers: Workers | None
    ) -> None:
        """Refuses the job with its reason, or runs it (no workers: scripts, benchmarks), or puts it in the hub's
        queue, where a worker of any server process takes it and checks it again under the rights of that moment."""
        try:  # from here every way out leaves the job finished: refused, with its reason, or run, or queued
            view = self._view(project)
            query, plan = self._compile(project, job, view, spec)
        except (SQLRefused, SpecError, CellKeyError, Conflict) as exc:
            self._refuse(actor, project, job, _said(exc))
            return
        except Exception:  # a bug, not the text's fault: refused on the record, the details in the server log only
            log.exception("analysis %d could not be checked", job.id)
            self.session.rollback()
            self._refuse(actor, project, job, UNCHECKED_MESSAGE)
            return
        if isinstance(plan, DPPlan):  # the cost is known from the spec: debited before anything runs, or refused
            try:
                reserve(self.session, project, job.id, plan.cost, actor=actor.ref)
            except BudgetError as exc:  # over budget (its refusal is on the record), or no budget open
                self._refuse(actor, project, job, exc.message)
                return
            self.session.commit()
        if workers is None:
            self._execute(actor, job, project, view, query, plan)
            return
        try:
            workers.enqueue(self.session, job)
        except Conflict as exc:
            if isinstance(plan, DPPlan):  # never queued: nothing read
                refund(self.session, job.id, reason="not queued: " + exc.message, actor=actor.ref)
            self._refuse(actor, project, job, exc.message)

    def _refuse(self, actor: Actor, project: Project, job: AnalysisJob, message: str) -> None:
        job.status, job.error, job.finished_at = REFUSED, message, _now()
        self._record(actor, "analysis.refuse", project, f"analysis:{job.id}",
                     {"kind": job.kind, "job": job.id, "reason": message}, Outcome.DENIED)  # fmt: skip
        self.session.commit()

    def run_claimed(self, job_id: int) -> None:
        """Runs a job a worker has claimed (moved to running), in this object's own session: read again from the
        database and checked again under its author's rights now, since time has passed since it was queued."""
        job = self.session.get(AnalysisJob, job_id)
        if job is None or job.status != RUNNING:
            return  # failed by a recovery meanwhile, or claimed by mistake: nothing to do
        actor = author_of(self.session, job)
        try:
            project = require_view_access(self.session, self.hub.settings, actor, job.project_id)
            spec = AggregateSpec.model_validate_json(job.text) if job.kind == "aggregate" else None
            view = self._view(project)
            query, plan = self._compile(project, job, view, spec)
        except (Denied, NotFound, SQLRefused, SpecError, CellKeyError, Conflict) as exc:
            self._refuse_claimed(actor, job, _said(exc))
            return
        self._execute(actor, job, project, view, query, plan)

    def _refuse_claimed(self, actor: Actor, job: AnalysisJob, message: str) -> None:
        """Refused before reading anything: the author lost the project, the project its view, or the view the
        columns the text names. A DP reservation is given back."""
        self.session.rollback()
        project = self.session.get(Project, job.project_id)
        assert project is not None  # a job's project is never deleted
        close_charge(self.session, job.id, before_data=True, reason="refused when run", actor=actor.ref)
        self._refuse(actor, project, job, message)

    def _execute(
        self,
        actor: Actor,
        job: AnalysisJob,
        project: Project,
        view: ProjectView,
        query: CompiledQuery,
        plan: AggregatePlan | DPPlan | None,
    ) -> None:
        kind = job.kind
        job.status, job.started_at = RUNNING, _now()
        self.session.commit()
        limits = Limits.from_settings(self.hub.settings)
        started = time.perf_counter()
        try:
            if isinstance(plan, AggregatePlan):  # the view's code lists from memory, or computed once for it
                plan = self._with_code_lists(project, view, plan)
                query = plan.query
            run = self.engine.run(project, query, limits)
        except QueryStopped as exc:
            # Invalid on the view's schema (planning, before any row is read): a refusal from the text, said as
            # such. Any other stop (time, memory, an error while reading) depends on the data: withheld, like
            # any refusal, with the reason on the record only.
            before_data = exc.reason == "invalid"
            job.status, job.error = REFUSED if before_data else FAILED, exc.message
            job.duration_seconds = round(time.perf_counter() - started, 3)
            if isinstance(plan, AggregatePlan):  # every aggregate run writes the same records, in the same order
                from hygie.analysis.ledger import not_reached

                not_reached(self.session, project, job.id, f"account:{job.author_id}")
            if isinstance(plan, DPPlan):
                close_charge(self.session, job.id, before_data=before_data, reason=exc.reason, actor=actor.ref)
            self._record(actor, "analysis.run", project, f"analysis:{job.id}",
                         {"kind": kind, "job": job.id, "status": job.status, "stopped": exc.reason,
                          "seconds": job.duration_seconds}, Outcome.FAILED)  # fmt: skip
            self._withhold(actor, project, job, exc.message, exc.reason)
            job.finished_at = _now()  # at the commit that makes the job finished for everyone (shown_job)
            self.session.commit()
            return
        job.status = SUCCEEDED
        job.duration_seconds = round(run.seconds, 3)
        scanned = sum(int(view.tables[t]["rows"]) for t in query.tables if t in view.tables)
        job.cost = {
            "rows_scanned": scanned,
            "cpu_seconds": round(run.cpu_seconds, 3),
            "output_rows": run.table.num_rows,
        }
        policy = disclosure_policy(self.hub, project)
        if isinstance(plan, DPPlan):
            release = self._release_dp(project, job, plan, run.table, policy)
            settle(self.session, job.id, actor=actor.ref)  # in the transaction that records the release
        elif plan is not None:
            release = self._protect_aggregate(project, job, plan, run.table, policy)
        else:
            release = self._check_sql_output(project, job, run.table, policy)
        self.session.add(release)
        self.session.flush()
        self._record(actor, "analysis.run", project, f"analysis:{job.id}",
                     {"kind": kind, "job": job.id, "status": SUCCEEDED, "rows": run.table.num_rows,
                      "cells": release.summary.get("cells", run.table.num_rows), "threshold": policy.threshold,
                      "verdict": release.verdict, "seconds": job.duration_seconds,
                      "rows_scanned": scanned})  # fmt: skip
        if release.status == RELEASED:
            self._record_release(actor, project, release, automatic=True)
        elif release.status == PENDING:
            self._record(actor, "analysis.airlock", project, f"release:{release.id}",
                         {"job": job.id, "rows": release.summary.get("rows"), "threshold": policy.threshold,
                          "findings": len(release.findings)})  # fmt: skip
        else:
            self._record(actor, "analysis.release.refuse", project, f"release:{release.id}",
                         {"job": job.id, "threshold": policy.threshold, "findings": len(release.findings)},
                         Outcome.DENIED)  # fmt: skip
        job.finished_at = _now()  # after the checks, the ledger and the audit: at the commit (shown_job)
        self.session.commit()

    def _withhold(self, actor: Actor, project: Project, job: AnalysisJob, reason: str, stopped: str) -> None:
        """A run that gave no output still leaves what a refused output leaves (a refused release and its record),
        so neither release ids nor the audit log's growth tell a stopped or failed run from a refused output."""
        threshold = disclosure_policy(self.hub, project).threshold
        release = AnalysisRelease(
            job_id=job.id, project_id=project.id, verdict=str(Verdict.REFUSE), status=REFUSED, columns=[], rows=[],
            sealed_rows=seal_rows(self.hub, project.id, job.id, []), findings=[reason],
            summary={"rows": None, "cells": None, "min_cell_people": None, "threshold": threshold,
                     "refusal": reason, "stopped": stopped},
            created_at=_now(), decided_at=_now(),
        )  # fmt: skip
        self.session.add(release)
        self.session.flush()
        self._record(actor, "analysis.release.refuse", project, f"release:{release.id}",
                     {"job": job.id, "threshold": threshold, "findings": 1, "stopped": stopped},
                     Outcome.DENIED)  # fmt: skip

    def _view(self, project: Project) -> ProjectView:
        view = newest_ready(self.session, project.id)
        if view is None:
            raise Conflict(
                N_(
                    "project {project} has no ready view yet: it is built when the project is activated",
                    project=project.id,
                )
            )
        return view

    def _compile(
        self, project: Project, job: AnalysisJob, view: ProjectView, spec: AggregateSpec | None
    ) -> tuple[CompiledQuery, AggregatePlan | DPPlan | None]:
        columns = {t: list(m["columns"]) for t, m in view.tables.items()}
        dp_mode = project.release_mode == DP
        if spec is None:
            if dp_mode:
                raise SpecError(
                    N_(
                        "this project releases with differential privacy: only aggregate specs, whose noise the "
                        "platform can calibrate; SQL outputs are not released in this mode"
                    )
                )
            return check_sql(job.text, columns), None
        year = ProjectScope.model_validate(project.scope).population.period_start.year
        if dp_mode:
            dp_plan = compile_dp(spec, columns, reference_year=year, settings=self.hub.settings)
            return dp_plan.query, dp_plan
        keys = project_record_keys(self.hub, self.session, project)
        plan = compile_aggregate(spec, columns, reference_year=year, record_keys=keys,
                                 threshold=disclosure_policy(self.hub, project).threshold, members=True)  # fmt: skip
        return plan.query, plan

    def _with_code_lists(self, project: Project, view: ProjectView, plan: AggregatePlan) -> AggregatePlan:
        """``plan`` reading the view's code lists from small tables instead of computing them over the whole view
        (:mod:`hygie.analysis.codelists`); the same cells, codes and outputs."""
        columns = {t: list(m["columns"]) for t, m in view.tables.items()}
        year = ProjectScope.model_validate(project.scope).population.period_start.year
        lists = code_lists(self.hub, self.session, self.engine, project, view, plan.spec, columns,
                           reference_year=year, threshold=plan.threshold)  # fmt: skip
        if not lists:
            return plan
        return compile_aggregate(plan.spec, columns, reference_year=year, record_keys=plan.query.auxiliary[RKEY_TABLE],
                                 threshold=plan.threshold, code_lists=lists, members=plan.members)  # fmt: skip

    def _protect_aggregate(
        self, project: Project, job: AnalysisJob, plan: AggregatePlan, result: pa.Table, policy: DisclosurePolicy
    ) -> AnalysisRelease:
        result, found = split_members(plan, result)  # the ledger's contributors: never in the output itself
        table = output_table(plan, result)
        out: ProtectedOutput = protect(table, policy)
        rows = [{k: _round(v) for k, v in row.items()} for row in out.rows()]
        columns = list(rows[0]) if rows else [*out.dimensions, "people", *(m.name for m in out.measures), "suppressed"]
        true_people = {c.key: c.people for c in table.cells}
        shown = [true_people[c.key] for c in out.cells if not c.suppressed and true_people.get(c.key, 0) > 0]
        summary: dict[str, Any] = {
            "cells": len(table.cells),
            "rows": len(rows),
            "suppressed": len(out.suppressed),
            "min_cell_people": min(shown) if shown else None,
            "threshold": policy.threshold,
        }
        status = {Verdict.RELEASE: RELEASED, Verdict.REVIEW: PENDING, Verdict.REFUSE: REFUSED}[out.verdict]
        verdict, findings = str(out.verdict), list(out.reasons)
        from hygie.analysis.ledger import guard_release, not_reached

        author = f"account:{job.author_id}"
        if status != REFUSED:  # checked against the project's other releases (docs/disclosure.md, the ledger)
            assert found is not None, "the service compiles aggregates with their members"
            guard = guard_release(self.hub, self.session, project, job.id, table, out, policy, found, author)
            findings += guard.findings
            if guard.refuse:
                status, verdict = REFUSED, str(Verdict.REFUSE)
            elif guard.review and status == RELEASED:
                status, verdict = PENDING, str(Verdict.REVIEW)
            if guard.entry is not None:
                self.session.add(guard.entry)  # committed with the release record
            summary["ledger"] = guard.state  # checkers only; a refusal or unchecked output holds the project
            summary["ledger_hold"] = guard.detail.get("hold")
        else:  # the same record as a checked output: the audit log grows alike whatever the outcome
            not_reached(self.session, project, job.id, author)
            summary["ledger"] = "not reached"
        return AnalysisRelease(
            job_id=job.id, project_id=project.id, verdict=verdict, status=status,
            columns=columns, rows=[], findings=findings,
            sealed_rows=seal_rows(self.hub, project.id, job.id, rows if status != REFUSED else []),
            summary=summary, created_at=_now(), decided_at=_now() if status != PENDING else None,
        )  # fmt: skip

    def _release_dp(
        self, project: Project, job: AnalysisJob, plan: DPPlan, result: pa.Table, policy: DisclosurePolicy
    ) -> AnalysisRelease:
        """A DP project's output: every cell of the public grid with OpenDP's noise, its scale and its interval;
        released at once (the budget, not suppression, protects it; no people count is kept in the summary)."""
        out = dp_release(plan, result)
        summary = {**out.summary, "threshold": policy.threshold}
        findings = [N_("differential privacy ({definition}): rho {rho:g} spent; every value is noisy, with its noise "
                       "standard deviation and a {confidence:.0%} interval", definition=out.summary["definition"],
                       rho=plan.cost, confidence=plan.confidence)]  # fmt: skip
        return AnalysisRelease(
            job_id=job.id, project_id=project.id, verdict=str(Verdict.RELEASE), status=RELEASED,
            columns=out.columns, rows=[], findings=findings,
            sealed_rows=seal_rows(self.hub, project.id, job.id, out.rows),
            summary=summary, created_at=_now(), decided_at=_now(),
        )  # fmt: skip

    def _check_sql_output(
        self, project: Project, job: AnalysisJob, result: pa.Table, policy: DisclosurePolicy
    ) -> AnalysisRelease:
        """SQL outputs always go to checkers; the platform refuses what is plainly row-level. The SQL was traced
        before running (``hygie.analysis.rowlevel``: no key however disguised, no row of a view table); here the
        data says whether the output still has about one row per person (``analysis_row_level_fraction`` of the
        view's people), and no refusal message quotes a data-dependent number."""
        findings: list[str] = []
        refusal: str | None = None
        settings = self.hub.settings
        cap = settings.analysis_max_output_rows
        row_level = [c for c in result.column_names if any(k in c.upper() for k in ROW_LEVEL_COLUMNS)]
        pseudonyms = project_record_keys(self.hub, self.session, project).column(PSEUDONYM_COLUMN)
        per_person = max(2.0, settings.analysis_row_level_fraction * len(pseudonyms))
        if result.num_rows > cap:
            refusal = N_("more rows than the cap of {cap}: an extract, not an aggregate", cap=cap)
        elif row_level:
            refusal = N_("columns {columns} carry patient pseudonyms or claim keys: row-level data never leaves",
                         columns=str(row_level))  # fmt: skip
        elif result.num_rows >= per_person:
            refusal = N_("about one row per person: at least {fraction:g} rows per person of the view, which "
                         "aggregates of enough people each cannot have; row-level data never leaves: group by fewer "
                         "or coarser attributes", fraction=settings.analysis_row_level_fraction)  # fmt: skip
        elif result.num_rows * policy.threshold > len(pseudonyms) and self._partitions_people(project, job):
            refusal = N_("each person is in one row at most (grouped by the beneficiaries' own columns) and there are "
                         "more rows than the view's people divided by {threshold}: some row describes fewer than "
                         "{threshold} people; group by fewer or coarser attributes",
                         threshold=policy.threshold)  # fmt: skip
        else:
            for name in result.column_names:
                column = result.column(name)
                if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                    if pc.any(pc.is_in(column, value_set=pseudonyms)).as_py():
                        refusal = N_("column {column} holds patient pseudonyms: row-level data never leaves",
                                     column=repr(name))  # fmt: skip
                        break
                elif pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
                    small = pc.sum(pc.and_(pc.greater(column, 0), pc.less(column, policy.threshold))).as_py() or 0
                    if small:
                        findings.append(N_("column {column}: {rows} rows hold a value between 0 and {threshold} (a "
                                           "small count?)", column=repr(name), rows=small,
                                           threshold=policy.threshold))  # fmt: skip
        findings.insert(0, N_("SQL output: the platform could not count the people behind each row; check that "
                              "every row describes at least {threshold} people and no value one person",
                              threshold=policy.threshold))  # fmt: skip
        if refusal:
            findings.insert(0, refusal)
        rows = json.loads(json.dumps(result.to_pylist(), default=str)) if not refusal else []
        return AnalysisRelease(
            job_id=job.id, project_id=project.id, verdict=str(Verdict.REFUSE if refusal else Verdict.REVIEW),
            status=REFUSED if refusal else PENDING, columns=list(result.column_names), rows=[],
            sealed_rows=seal_rows(self.hub, project.id, job.id, rows), findings=findings,
            summary={"rows": result.num_rows, "cells": result.num_rows, "min_cell_people": None,
                     "threshold": policy.threshold, "refusal": refusal},
            created_at=_now(), decided_at=_now() if refusal else None,
        )  # fmt: skip

    def _partitions_people(self, project: Project, job: AnalysisJob) -> bool:
        """Whether the job's SQL puts each person of the view in one output row at most (``rowlevel``)."""
        import sqlglot
        from sqlglot.errors import SqlglotError

        from hygie.analysis.rowlevel import partitions_people

        columns = {t: list(m["columns"]) for t, m in self._view(project).tables.items()}
        try:
            return partitions_people(sqlglot.parse_one(job.text, read="duckdb"), columns)
        except SqlglotError:
            return False

    def _record_release(self, actor: Actor, project: Project, release: AnalysisRelease, *, automatic: bool) -> None:
        detail = {"job": release.job_id, "automatic": automatic, "verdict": release.verdict,
                  "rows": release.summary.get("rows"), "cells": release.summary.get("cells"),
                  "threshold": release.summary.get("threshold")}  # fmt: skip
        if isinstance(release.summary.get("min_cell_people"), int):
            detail["min_cell_people"] = release.summary["min_cell_people"]
        self._record(actor, "analysis.release", project, f"release:{release.id}", detail)

    # -- reading (members) --------------------------------------------------------------------------------

    def jobs(self, actor: Actor, project_id: int) -> list[tuple[AnalysisJob, AnalysisRelease | None]]:
        project = require_view_access(self.session, self.hub.settings, actor, project_id)
        jobs = list(self.session.scalars(select(AnalysisJob).where(AnalysisJob.project_id == project_id)
                                         .order_by(AnalysisJob.id.desc()).limit(500)))  # fmt: skip
        self._record(actor, "analysis.jobs.list", project, f"project:{project_id}", {"count": len(jobs)})
        return [(j, self._release_of(j.id)) for j in jobs]

    def job(self, actor: Actor, project_id: int, job_id: int) -> tuple[AnalysisJob, AnalysisRelease | None]:
        project = require_view_access(self.session, self.hub.settings, actor, project_id)
        job = self._job(project_id, job_id)
        self._record(actor, "analysis.jobs.read", project, f"analysis:{job_id}", {"job": job_id})
        return job, self._release_of(job_id)

    def release(self, actor: Actor, project_id: int, job_id: int) -> AnalysisRelease:
        project = require_view_access(self.session, self.hub.settings, actor, project_id)
        release = self._released(project_id, job_id)
        self._record(actor, "analysis.release.read", project, f"release:{release.id}",
                     {"job": job_id, "rows": release.summary.get("rows")})  # fmt: skip
        return release

    def download(self, actor: Actor, project_id: int, job_id: int, fmt: str) -> Download:
        if fmt not in ("csv", "json"):
            raise Invalid(N_("format is 'csv' or 'json'"))
        project = require_view_access(self.session, self.hub.settings, actor, project_id)
        release = self._released(project_id, job_id)
        if fmt == "json":
            rows = self.rows_of(release)
            content = json.dumps({"columns": release.columns, "rows": rows}, ensure_ascii=False).encode()
            media = "application/json"
        else:
            rows = self.rows_of(release)  # text a spreadsheet would execute is escaped, numbers stay numbers
            content, media = write_dict_csv(rows, release.columns).encode(), "text/csv"
        self._record(actor, "analysis.download", project, f"release:{release.id}",
                     {"job": job_id, "format": fmt, "rows": len(rows), "bytes": len(content)})  # fmt: skip
        return Download(content, media, f"project-{project_id}-analysis-{job_id}.{fmt}")

    def rows_of(self, release: AnalysisRelease) -> list[dict[str, Any]]:
        """A release's rows, opened with the project's key; callers have passed the access checks already."""
        if release.sealed_rows is None:
            return release.rows  # made before outputs were sealed (revision 0006an)
        try:
            return open_rows(self.hub, release.project_id, release.job_id, release.sealed_rows)
        except OutputShredded as exc:
            raise Conflict(_said(exc)) from exc

    def _job(self, project_id: int, job_id: int) -> AnalysisJob:
        job = self.session.get(AnalysisJob, job_id)
        if job is None or job.project_id != project_id:
            raise NotFound(N_("no analysis {job} in project {project}", job=job_id, project=project_id))
        return job

    def _release_of(self, job_id: int) -> AnalysisRelease | None:
        return self.session.scalar(select(AnalysisRelease).where(AnalysisRelease.job_id == job_id))

    def shown(self, job: AnalysisJob, release: AnalysisRelease | None) -> ShownJob:
        """What the job shows its project's members (see :func:`shown_job`)."""
        return shown_job(job, release, self.hub.settings.analysis_visible_quantum_seconds)

    def _released(self, project_id: int, job_id: int) -> AnalysisRelease:
        """The job's released output, once the job shows as released; one answer for every other case (pending,
        rejected, refused, stopped, failed, not yet visible), which could otherwise tell them apart."""
        job = self._job(project_id, job_id)
        release = self._release_of(job_id)
        if release is None or self.shown(job, release).status != SHOWN_RELEASED:
            raise Conflict(N_("analysis {job} has no released output: only released outputs can be read or "
                              "downloaded", job=job_id))  # fmt: skip
        return release

    # -- the airlock (output checkers) --------------------------------------------------------------------

    def _require_checker(self, actor: Actor) -> None:
        if actor.role not in reviewing_roles(self.hub.settings.dpo_may_review):
            raise Denied(N_("a {role} cannot check outputs; reviewers do (the DPO oversees, and checks outputs only if "
                            "the policy setting dpo_may_review says so)",
                            role=word(ROLE, actor.role_name or "visitor")))  # fmt: skip
        if TokenScope.GOVERNANCE not in actor.scopes:
            raise Denied(N_("checking outputs needs the governance scope"))

    def _require_independent(self, actor: Actor, release: AnalysisRelease, project: Project) -> None:
        self._require_checker(actor)
        job = self.session.get(AnalysisJob, release.job_id)
        assert job is not None
        member = self.session.scalar(select(ProjectMember.id).where(
            ProjectMember.project_id == project.id, ProjectMember.account_id == actor.account_id))  # fmt: skip
        if actor.account_id in (job.author_id, project.requester_id) or member is not None:
            raise Denied(N_("you wrote analysis {job} or belong to project {project}: someone else must check it",
                            job=job.id, project=project.id))  # fmt: skip

    def airlock(self, actor: Actor) -> list[tuple[AnalysisRelease, AnalysisJob, int]]:
        """Pending releases with their job and the approvals so far."""
        self._require_checker(actor)
        pending = list(self.session.scalars(select(AnalysisRelease).where(AnalysisRelease.status == PENDING)
                                            .order_by(AnalysisRelease.id).limit(500)))  # fmt: skip
        out = []
        for release in pending:
            job = self.session.get(AnalysisJob, release.job_id)
            assert job is not None
            out.append((release, job, self._approvals(release)))
        self._record(actor, "analysis.airlock.list", None, "airlock", {"count": len(out)})
        return out

    def inspect(self, actor: Actor, release_id: int) -> tuple[AnalysisRelease, AnalysisJob, list[ReleaseDecision]]:
        """A release's full content, for a checker who may decide on it. Only checkers pass, before the release is
        looked up (the same 403 whether it exists or not); an output no longer awaiting checkers answers as a
        missing one: once released or rejected, its rows are its project's business, not a checker's."""
        self._require_checker(actor)
        pending = self.session.get(AnalysisRelease, release_id)
        if pending is None or pending.status != PENDING:
            raise NotFound(N_("no output {release} awaiting checkers", release=release_id))
        release, project = self._release(release_id)
        self._require_independent(actor, release, project)
        job = self.session.get(AnalysisJob, release.job_id)
        assert job is not None
        decisions = list(self.session.scalars(select(ReleaseDecision).where(ReleaseDecision.release_id == release.id)
                                              .order_by(ReleaseDecision.id)))  # fmt: skip
        self._record(actor, "analysis.airlock.read", project, f"release:{release.id}",
                     {"job": job.id, "rows": release.summary.get("rows")})  # fmt: skip
        return release, job, decisions

    def decide(self, actor: Actor, release_id: int, decision: str, reason: str) -> AnalysisRelease:
        self._require_checker(actor)
        release, project = self._release(release_id)
        self._require_independent(actor, release, project)
        if decision not in ("approve", "reject"):
            raise Invalid(N_("decision is 'approve' or 'reject'"))
        if len(reason.strip()) < MIN_REASON:
            raise Invalid(N_("a decision needs its reason, in at least {minimum} characters", minimum=MIN_REASON))
        if release.status != PENDING:
            raise Conflict(N_("release {release} is {status}, not awaiting checkers", release=release.id,
                              status=word(RELEASE_STATUS, release.status)))  # fmt: skip
        assert actor.account_id is not None
        earlier = self.session.scalar(select(ReleaseDecision.id).where(
            ReleaseDecision.release_id == release.id, ReleaseDecision.checker_id == actor.account_id))  # fmt: skip
        if earlier is not None:
            raise Conflict(N_("you already decided on release {release}: a release needs distinct checkers",
                              release=release.id))  # fmt: skip
        self.session.add(ReleaseDecision(release_id=release.id, checker_id=actor.account_id, decision=decision,
                                         reason=reason.strip(), at=_now()))  # fmt: skip
        self.session.flush()
        approvals = self._approvals(release)
        needed = self.hub.settings.analysis_checkers_required
        if decision == "reject":
            release.status, release.decided_at = REJECTED, _now()
        elif approvals >= needed:
            release.status, release.decided_at = RELEASED, _now()
        self._record(actor, "analysis.airlock.decide", project, f"release:{release.id}",
                     {"job": release.job_id, "decision": decision, "approvals": approvals, "needed": needed,
                      "status": release.status})  # fmt: skip
        if release.status == RELEASED:
            self._record_release(actor, project, release, automatic=False)
        return release

    def _release(self, release_id: int) -> tuple[AnalysisRelease, Project]:
        release = self.session.get(AnalysisRelease, release_id)
        if release is None:
            raise NotFound(N_("no release {release}", release=release_id))
        project = self.session.get(Project, release.project_id)
        assert project is not None
        return release, project

    def _approvals(self, release: AnalysisRelease) -> int:
        return len(list(self.session.scalars(select(ReleaseDecision.id).where(
            ReleaseDecision.release_id == release.id, ReleaseDecision.decision == "approve"))))  # fmt: skip


UNCHECKED_MESSAGE = N_("the platform could not check this request; the failure is on the record: tell the operator")
FAILED_MESSAGE = N_("the platform failed while running this analysis; the failure is on the record: tell the operator")


def _said(exc: Exception) -> str:
    """An exception's message as it was raised (a catalogued message keeps its identifier), not ``str(exc)``."""
    message = getattr(exc, "message", None)
    if isinstance(message, str):
        return message
    if len(exc.args) == 1 and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)


def author_of(session: Session, job: AnalysisJob) -> Actor:
    """The job's author as the worker acts for them: with their role now (a disabled account reaches nothing) and
    the data scope bound to the job's project, which their submission needed."""
    account = session.get(Account, job.author_id)
    role = Role(account.role) if account is not None and not account.disabled else None
    return Actor(account_id=job.author_id, role=role, scopes=frozenset({TokenScope.DATA}),
                 project_id=job.project_id, via="analysis-queue")  # fmt: skip


def run_job(hub: Hub, engine: Engine, job_id: int) -> None:
    """A worker's task, for a job it claimed: run it in a session of its own; any unexpected error fails the job, on
    the record (the exception goes to the server log, never to the author: it could quote data)."""
    try:
        with hub.session() as session:
            Analyses(hub, session, engine).run_claimed(job_id)
    except Exception as exc:
        # Raised while the view's rows were in hand: its message may quote one of them, so the log keeps its type
        # and where it was raised only.
        log.error("analysis run %d failed: %s", job_id, where(exc))
        with hub.session() as session:
            job = session.get(AnalysisJob, job_id)
            if job is None or job.status not in (QUEUED, RUNNING):
                return
            actor = author_of(session, job)
            job.status, job.error = FAILED, FAILED_MESSAGE
            project = session.get(Project, job.project_id)
            dp = project is not None and project.release_mode == DP
            if job.kind == "aggregate" and not dp and project is not None:  # the same records as any aggregate run
                from hygie.analysis.ledger import not_reached

                not_reached(session, project, job.id, f"account:{job.author_id}")
            close_charge(session, job.id, before_data=False, reason="error", actor=actor.ref)
            record(session, actor=actor.ref, role=actor.role_name, action="analysis.run", outcome=Outcome.FAILED,
                   object=f"analysis:{job.id}", project_id=job.project_id, purpose=None,
                   detail={"kind": job.kind, "job": job.id, "status": FAILED, "stopped": "error"})  # fmt: skip
            released = session.scalar(select(AnalysisRelease.id).where(AnalysisRelease.job_id == job.id))
            if project is not None and released is None:
                Analyses(hub, session, engine)._withhold(actor, project, job, FAILED_MESSAGE, "error")
            job.finished_at = _now()  # at the commit (shown_job)
            session.commit()
