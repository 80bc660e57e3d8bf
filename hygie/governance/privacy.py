# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The privacy-budget ledger: what a project in differential-privacy release mode may still spend, counted in the
database, so it outlives processes and holds across portal workers.

Two kinds of budget, one table (:class:`PrivacyBudget`):

- ``project:<id>``: the budget the reviewers approved for the project (``Project.privacy_budget``);
- ``population:<key>``: a budget for the people a project's view covers, shared by every DP project over the same
  population and purpose (:func:`population_key`), so a second project over the same people cannot start afresh.
  Its total is the setting ``dp_population_budget`` when it is opened.

A release is charged against its project's budget, its population's, and every other population budget that may
share people with it (:func:`may_overlap`: overlapping periods, ages, sexes and départements, whatever the purpose).
So a person's releases, whichever projects made them, all count against the budget of every population that holds
them: a shifted period, a narrower age band or another purpose opens a new population budget but escapes none.

Every release of a DP project is charged against both, in the unit stated by :mod:`hygie.disclosure.dp` (the
budget numbers here are plain floats in that unit). The life of a charge (:class:`PrivacyCharge`, one per job):

- :func:`reserve` before the job touches data: atomic, refused with :class:`BudgetExceeded` when either budget
  would go past its total (nothing is written then but the refusal's record);
- :func:`settle` in the same transaction that writes the job's release: the reservation becomes spent;
- :func:`refund` only for a job refused before it touched any data: the reservation is given back.

Concurrency: a reservation is one conditional ``UPDATE ... SET reserved = reserved + cost WHERE spent + reserved +
cost <= total`` per budget row. On PostgreSQL the row lock and the re-check of the ``WHERE`` clause after a wait
(READ COMMITTED), on SQLite the database write lock, make concurrent reservations from any number of processes
never overspend. When the project's row accepts and the population's refuses, the project's row is given back in
the same transaction (its row lock is still held), so nothing is left half-charged.

Every reservation, refusal, settlement, refund and budget opening is an audit event carrying its amount, written
in the same transaction as the ledger change: :func:`replay` rebuilds every balance from the log alone and
:func:`check_replay` compares it with the ledger (``hygie projects budget-check``).

The amounts say nothing about a person: a budget is chosen by the requester and approved by reviewers, a cost
is computed by the analysis layer from the request (measure, bounds, noise parameters), never from the data. The
ledger, its events and the public register hold only these request-determined numbers.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from hygie.audit import AuditEvent, Outcome, record
from hygie.db import Base
from hygie.governance.errors import Conflict, Invalid
from hygie.governance.models import Project
from hygie.i18n import N_
from hygie.vocabulary import PROJECT_STATUS, word

RELEASE_MODES = ("sdc", "dp")
"""'sdc': statistical disclosure control (suppression, rounding; the default); 'dp': differential privacy with a
privacy budget."""
DP = "dp"
SDC = "sdc"
POPULATION_KEY_FORMAT = "hygie.dp-population/1"
EVENT_PREFIX = "privacy."
RESERVED = "reserved"
SPENT = "spent"
REFUNDED = "refunded"
SLACK = 1e-9
"""How far floating-point rounding may take a budget's spent and reserved past its total (see _add_reserved)."""


class BudgetError(Invalid):
    """A budget or a cost that cannot be used, or a ledger operation that does not apply (422)."""


class BudgetExceeded(BudgetError):
    """The request needs more than the project's or the population's budget has left (409)."""

    status = 409


class PrivacyBudget(Base):
    """One budget: a project's (``project:<id>``) or a population's (``population:<sha256>``)."""

    __tablename__ = "privacy_budget"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), nullable=False, unique=True)
    """``project:<id>`` or ``population:<64 hex>`` (the population key)."""
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    """'project' or 'population'."""
    project_id: Mapped[int | None] = mapped_column(ForeignKey("project.id"), nullable=True, unique=True)
    """For a project's budget: the project."""
    purpose: Mapped[str | None] = mapped_column(String(40), nullable=True)
    """For a population's budget: the purpose it is for (part of its key)."""
    criteria: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    """For a population's budget: its :func:`population_criteria` (which other populations it may overlap)."""
    total: Mapped[float] = mapped_column(Float, nullable=False)
    spent: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    reserved: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class PrivacyCharge(Base):
    """One job's charge against its project's and its population's budgets."""

    __tablename__ = "privacy_charge"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(Integer, nullable=False, unique=True)
    """The analysis job (hygie.analysis.models.AnalysisJob.id; no foreign key: governance sits below analysis)."""
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), nullable=False, index=True)
    project_budget_id: Mapped[int] = mapped_column(ForeignKey("privacy_budget.id"), nullable=False)
    population_budget_id: Mapped[int] = mapped_column(ForeignKey("privacy_budget.id"), nullable=False)
    other_budget_ids: Mapped[list[int] | None] = mapped_column(JSON, nullable=True)
    """The other population budgets charged too: those that may share people with this project's population."""
    cost: Mapped[float] = mapped_column(Float, nullable=False)
    status: Mapped[str] = mapped_column(String(12), nullable=False)
    """'reserved', 'spent' or 'refunded'."""
    actor: Mapped[str] = mapped_column(String(100), nullable=False)
    reserved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    """When it was spent or refunded."""
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Why a reservation was refunded."""


@dataclass(frozen=True)
class Budget:
    """A DP project's balance, and the balance of the population budget it shares."""

    total: float
    spent: float
    reserved: float
    left: float
    """total - spent - reserved of the project's own budget."""
    population_key: str
    population_total: float
    population_spent: float
    population_reserved: float
    population_left: float
    """Left of the population's budget, or of an overlapping population's if that has less (the smallest)."""
    available: float
    """What the next request may cost at most: the smaller of ``left`` and ``population_left``."""
    projects_sharing: int
    """DP projects charged against the same population budget (this one included)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "spent": self.spent,
            "reserved": self.reserved,
            "left": self.left,
            "population_key": self.population_key,
            "population_total": self.population_total,
            "population_spent": self.population_spent,
            "population_reserved": self.population_reserved,
            "population_left": self.population_left,
            "available": self.available,
            "projects_sharing": self.projects_sharing,
        }


def _now() -> datetime:
    return datetime.now(UTC)


def _fmt(value: float) -> str:
    return f"{value:.6g}"


# -- validation ----------------------------------------------------------------------------------------------


def check_amount(name: str, value: Any) -> float:
    """A budget or cost: a real number, finite and strictly positive; anything else is refused (BudgetError)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BudgetError(N_("{field} must be a number", field=name))
    number = float(value)
    if math.isnan(number):
        raise BudgetError(N_("{field} is not a number (NaN); give a positive, finite amount", field=name))
    if math.isinf(number):
        raise BudgetError(N_("{field} is infinite; a privacy budget must be finite, or it protects nobody", field=name))
    if number <= 0:
        raise BudgetError(N_("{field} must be more than zero (got {amount})", field=name, amount=_fmt(number)))
    return number


def check_release(release_mode: Any, privacy_budget: Any, *, population_budget: float) -> float | None:
    """Check a project's release mode and budget as requested; the budget to store (None in 'sdc' mode).

    'dp' needs a budget, finite, positive, and no larger than a population's whole budget (``population_budget``,
    the setting ``dp_population_budget``); 'sdc' takes none."""
    if release_mode not in RELEASE_MODES:
        raise BudgetError(N_("release_mode must be one of {modes}", modes=", ".join(RELEASE_MODES)))
    if release_mode == SDC:
        if privacy_budget is not None:
            raise BudgetError(N_("a privacy_budget is only for release_mode 'dp'; leave it out, or ask for 'dp'"))
        return None
    if privacy_budget is None:
        raise BudgetError(N_("release_mode 'dp' needs a privacy_budget (a positive, finite amount)"))
    amount = check_amount("privacy_budget", privacy_budget)
    if amount > population_budget:
        raise BudgetError(
            N_(
                "privacy_budget {amount} is more than a whole population's budget ({population}, "
                "setting dp_population_budget); ask for less",
                amount=_fmt(amount),
                population=_fmt(population_budget),
            )
        )
    return amount


# -- the population key --------------------------------------------------------------------------------------


def population_criteria(purpose: str, scope: dict[str, Any]) -> dict[str, Any]:
    """The canonical form of a project's population and purpose: what "the same population" means.

    Two projects share a population budget when these are equal: the same purpose, the same period, and the same
    population criteria once written one way (age bounds of 0 and 130 and no bound alike; both sexes and no sex
    criterion alike; regions expanded to their départements, every département and none alike; code lists
    sorted, without duplicates, and an ATC prefix covered by a shorter listed one dropped). Tables, columns and
    potential identifiers are not part of it: they change what is seen of the people, not who they are."""
    from hygie.governance.policy import Population, departements_by_region

    population = Population.model_validate(scope["population"])
    every = {d for ds in departements_by_region().values() for d in ds}
    departements = population.all_departements()
    if set(departements) == every:
        departements = []
    sexes = sorted(set(population.sexes))
    if set(sexes) == {1, 2}:
        sexes = []
    atc = sorted(set(population.drugs_atc))
    atc = [code for code in atc if not any(code != other and code.startswith(other) for other in atc)]
    return {
        "format": POPULATION_KEY_FORMAT,
        "purpose": purpose,
        "period_start": population.period_start.isoformat(),
        "period_end": population.period_end.isoformat(),
        "age_min": population.age_min or None,
        "age_max": population.age_max if population.age_max is not None and population.age_max < 130 else None,
        "sexes": sexes,
        "departements": departements,
        "drugs_atc": atc,
        "ccam_acts": sorted(set(population.ccam_acts)),
        "exemption_codes": sorted(set(population.exemption_codes)),
    }


def population_key(purpose: str, scope: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of :func:`population_criteria`."""
    canonical = json.dumps(population_criteria(purpose, scope), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _project_name(project_id: int) -> str:
    return f"project:{project_id}"


def _population_name(key: str) -> str:
    return f"population:{key}"


def may_overlap(first: dict[str, Any], second: dict[str, Any]) -> bool:
    """Whether two populations (:func:`population_criteria`) may hold common people: overlapping periods, age
    bands, sexes and départements. Code criteria (drugs, acts, exemptions) never make two populations disjoint
    here: one person may match both. Purpose is not considered (the same people are the same people)."""
    if first["period_end"] < second["period_start"] or second["period_end"] < first["period_start"]:
        return False
    lo = max(first["age_min"] or 0, second["age_min"] or 0)
    hi = min(
        130 if first["age_max"] is None else first["age_max"], 130 if second["age_max"] is None else second["age_max"]
    )
    if lo > hi:
        return False
    if first["sexes"] and second["sexes"] and not set(first["sexes"]) & set(second["sexes"]):
        return False
    return not (
        first["departements"]
        and second["departements"]
        and not set(first["departements"]) & set(second["departements"])
    )


# -- reading ----------------------------------------------------------------------------------------------


def _project_of(session: Session, project: Project | int) -> Project:
    if isinstance(project, Project):
        return project
    found = session.get(Project, project)
    if found is None:
        raise BudgetError(N_("no project {project}", project=project))
    return found


def _budget_row(session: Session, name: str) -> PrivacyBudget | None:
    return session.scalar(select(PrivacyBudget).where(PrivacyBudget.name == name))


def _left(row: PrivacyBudget) -> float:
    return max(0.0, row.total - row.spent - row.reserved)


def project_budget(session: Session, project: Project | int) -> Budget | None:
    """The project's balance and its population's; None when the project is not in DP mode. A DP project not yet
    activated (its budgets not opened) shows its approved budget untouched and its population's as it stands (or,
    for a population no project opened yet, nothing spent: totals of 0 until it is opened)."""
    project = _project_of(session, project)
    if project.release_mode != DP or project.privacy_budget is None:
        return None
    own = _budget_row(session, _project_name(project.id))
    key = population_key(project.purpose, project.scope)
    population = _budget_row(session, _population_name(key))
    total = own.total if own is not None else project.privacy_budget
    spent = own.spent if own is not None else 0.0
    reserved = own.reserved if own is not None else 0.0
    left = max(0.0, total - spent - reserved)
    if population is not None:
        p_total, p_spent, p_reserved = population.total, population.spent, population.reserved
        p_left = min([_left(population), *(_left(o) for o in overlapping_budgets(session, project, population))])
    else:
        p_total = p_spent = p_reserved = p_left = 0.0
    sharing = {p.id for p in sharing_projects(session, key)}
    sharing.add(project.id)
    return Budget(
        total=total,
        spent=spent,
        reserved=reserved,
        left=left,
        population_key=key,
        population_total=p_total,
        population_spent=p_spent,
        population_reserved=p_reserved,
        population_left=p_left,
        available=min(left, p_left) if population is not None else left,
        projects_sharing=len(sharing),
    )


def sharing_projects(session: Session, key: str) -> list[Project]:
    """DP projects whose population and purpose give ``key`` (any status)."""
    candidates = session.scalars(
        select(Project).where(Project.release_mode == DP, Project.privacy_budget.is_not(None)).order_by(Project.id)
    ).all()
    return [p for p in candidates if population_key(p.purpose, p.scope) == key]


def overlapping_projects(session: Session, project: Project) -> list[Project]:
    """Other DP projects whose population may share people with this one's but has another key (another purpose,
    a shifted period, another age band...): shown to the reviewers; each release of either is charged against the
    other's population budget too (:func:`overlapping_budgets`)."""
    mine = population_criteria(project.purpose, project.scope)
    key = population_key(project.purpose, project.scope)
    out = []
    for other in session.scalars(
        select(Project).where(Project.release_mode == DP, Project.id != project.id).order_by(Project.id)
    ).all():
        theirs = population_criteria(other.purpose, other.scope)
        if population_key(other.purpose, other.scope) != key and may_overlap(mine, theirs):
            out.append(other)
    return out


def _criteria_of(session: Session, row: PrivacyBudget) -> dict[str, Any] | None:
    """A population budget's criteria: kept on the row or, for a row opened before they were kept, those of a
    project charged against it (read, never written back: a balance read changes nothing)."""
    if row.criteria is not None:
        return row.criteria
    for project in sharing_projects(session, row.name.removeprefix("population:")):
        return population_criteria(project.purpose, project.scope)
    return None


def overlapping_budgets(session: Session, project: Project, population: PrivacyBudget) -> list[PrivacyBudget]:
    """Every other open population budget that may share people with ``project``'s population, by id (the order
    reservations take their row locks in, so concurrent ones never wait on each other in a cycle). A budget whose
    criteria cannot be known is taken as overlapping: charging too much never lets anyone through."""
    mine = population_criteria(project.purpose, project.scope)
    rows = session.scalars(
        select(PrivacyBudget)
        .where(PrivacyBudget.kind == "population", PrivacyBudget.id != population.id)
        .order_by(PrivacyBudget.id)
    ).all()
    out = []
    for row in rows:
        theirs = _criteria_of(session, row)
        if theirs is None or may_overlap(mine, theirs):
            out.append(row)
    return out


# -- opening budgets (at activation) -------------------------------------------------------------------------


def open_budgets(session: Session, project: Project, *, population_budget: float, actor: str) -> None:
    """Open (or bring up to date) a DP project's budget and its population's, at activation, in the caller's
    transaction (the project row locked). The project's total becomes its approved ``privacy_budget``; what it
    spent stays spent. A population budget, once opened, keeps its total. Each opening or change of total is an
    audit event. Nothing happens for an 'sdc' project."""
    if project.release_mode != DP or project.privacy_budget is None:
        return
    total = check_amount("privacy_budget", project.privacy_budget)
    now = _now()
    own = _budget_row(session, _project_name(project.id))
    if own is None:
        own = PrivacyBudget(name=_project_name(project.id), kind="project", project_id=project.id, total=total,
                            spent=0.0, reserved=0.0, opened_at=now)  # fmt: skip
        session.add(own)
        _event(session, actor, "privacy.budget.open", project, budget=own.name, total=total, previous_total=None)
    elif own.total != total:
        previous = own.total
        own.total = total
        _event(session, actor, "privacy.budget.open", project, budget=own.name, total=total, previous_total=previous)
    key = population_key(project.purpose, project.scope)
    population = _budget_row(session, _population_name(key))
    if population is None:
        amount = check_amount("dp_population_budget", population_budget)
        population = PrivacyBudget(name=_population_name(key), kind="population", purpose=project.purpose,
                                   criteria=population_criteria(project.purpose, project.scope), total=amount,
                                   spent=0.0, reserved=0.0, opened_at=now)  # fmt: skip
        session.add(population)
        _event(session, actor, "privacy.budget.open", project, budget=population.name, total=amount,
               previous_total=None)  # fmt: skip
    session.flush()


def _event(
    session: Session, actor: str, action: str, project: Project | None, *, outcome: Outcome = Outcome.OK, **detail: Any
) -> None:
    record(
        session,
        actor=actor,
        action=action,
        object=f"project:{project.id}" if project is not None else None,
        project_id=project.id if project is not None else None,
        purpose=project.purpose if project is not None else None,
        outcome=outcome,
        detail=detail,
    )


# -- the ledger ------------------------------------------------------------------------------------------------


def _add_reserved(session: Session, budget_id: int, cost: float) -> bool:
    """Reserve ``cost`` on one budget row if it fits: one conditional UPDATE (the row lock on PostgreSQL, the
    write lock on SQLite); True if it fitted."""
    # SLACK: sums of binary floats drift (0.1 + 0.1 + 0.1 > 0.3), so a budget of 0.3 would refuse its third
    # charge of 0.1; the whole ledger may go past a total by SLACK at most, never by a charge.
    fits = (PrivacyBudget.spent + PrivacyBudget.reserved + cost) <= PrivacyBudget.total + SLACK
    result = session.execute(
        update(PrivacyBudget)
        .where(PrivacyBudget.id == budget_id, fits)
        .values(reserved=PrivacyBudget.reserved + cost)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _move(session: Session, budget_id: int, cost: float, *, spend: bool) -> None:
    values: dict[str, Any] = {"reserved": PrivacyBudget.reserved - cost}
    if spend:
        values["spent"] = PrivacyBudget.spent + cost
    session.execute(
        update(PrivacyBudget)
        .where(PrivacyBudget.id == budget_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def reserve(session: Session, project: Project | int, job_id: int, cost: float, *, actor: str) -> None:
    """Reserve ``cost`` of the project's and its population's budgets for ``job_id``, before the job touches data.

    Raises :class:`BudgetExceeded` when either would go past its total (the refusal is recorded in the caller's
    session: the caller commits it, e.g. with the job marked refused, and runs nothing), :class:`BudgetError` for
    a project not in DP mode, budgets not opened, a bad cost or a job already charged. Otherwise the reservation
    and its audit event are in the caller's transaction."""
    project = _project_of(session, project)
    cost = check_amount("cost", cost)
    if project.release_mode != DP or project.privacy_budget is None:
        raise BudgetError(
            N_("project {project} does not release with differential privacy: it has no budget", project=project.id)
        )
    if project.status != "active":
        raise BudgetError(
            N_(
                "project {project} is {status}, not active: nothing can be charged to it",
                project=project.id,
                status=word(PROJECT_STATUS, project.status),
            )
        )
    own = _budget_row(session, _project_name(project.id))
    key = population_key(project.purpose, project.scope)
    population = _budget_row(session, _population_name(key))
    if own is None or population is None:
        raise BudgetError(
            N_(
                "project {project}'s privacy budget is not open yet: it opens when the project is approved",
                project=project.id,
            )
        )
    if session.scalar(select(PrivacyCharge.id).where(PrivacyCharge.job_id == job_id)) is not None:
        raise BudgetError(N_("job {job} is already charged", job=job_id))
    others = overlapping_budgets(session, project, population)
    refused: str | None = None
    taken: list[PrivacyBudget] = []
    populations = sorted([population, *others], key=lambda row: row.id)  # one lock order for every reservation
    for row in [own, *populations]:
        if not _add_reserved(session, row.id, cost):
            refused = "project" if row is own else "population" if row is population else "overlapping"
            break
        taken.append(row)
    if refused is not None:
        for row in taken:  # give back what this request took (the row locks are still ours)
            _move(session, row.id, cost, spend=False)
    for row in (own, population, *others):
        session.refresh(row)
    if refused is not None:
        left, p_left = _left(own), _left(population)
        # the overlapping budget that refused, by its left only: which project made it is not the asker's business
        o_left = min((_left(o) for o in others), default=None) if refused == "overlapping" else None
        _event(session, actor, "privacy.reserve", project, outcome=Outcome.DENIED, job=job_id, cost=cost,
               refused_by=refused, left=left, population_left=p_left,
               **({"overlapping_left": o_left} if o_left is not None else {}))  # fmt: skip
        if refused == "project":
            message = N_(
                "this request needs a privacy budget of {cost}; project {project} has {left} left of {total}. "
                "Ask for fewer or coarser statistics, or ask the reviewers for a larger budget",
                cost=_fmt(cost),
                project=project.id,
                left=_fmt(left),
                total=_fmt(own.total),
            )
        elif refused == "population":
            message = N_(
                "this request needs a privacy budget of {cost}; the population this project shares with "
                "other projects of the same purpose has {left} left of {total}. "
                "Nothing more can be released about these people with this purpose",
                cost=_fmt(cost),
                left=_fmt(p_left),
                total=_fmt(population.total),
            )
        else:
            message = N_(
                "this request needs a privacy budget of {cost}; some of this project's people are also in the "
                "population of other projects (another period, age band or purpose), whose budget cannot take it. "
                "Nothing more can be released about these people",
                cost=_fmt(cost),
            )
        error = BudgetExceeded(message)
        error.recorded = True
        raise error
    session.add(
        PrivacyCharge(
            job_id=job_id,
            project_id=project.id,
            project_budget_id=own.id,
            population_budget_id=population.id,
            other_budget_ids=[o.id for o in others],
            cost=cost,
            status=RESERVED,
            actor=actor,
            reserved_at=_now(),
        )
    )
    session.flush()
    _event(session, actor, "privacy.reserve", project, job=job_id, cost=cost,
           budgets=[own.name, population.name, *(o.name for o in others)])  # fmt: skip


def _charge(session: Session, job_id: int) -> PrivacyCharge:
    charge = session.scalar(select(PrivacyCharge).where(PrivacyCharge.job_id == job_id).with_for_update())
    if charge is None:
        raise BudgetError(N_("job {job} has no privacy budget reservation", job=job_id))
    if charge.status != RESERVED:
        raise Conflict(N_("job {job}'s reservation is already {state}", job=job_id, state=charge.status))
    return charge


def _close(session: Session, job_id: int, status: str, reason: str | None) -> PrivacyCharge:
    charge = _charge(session, job_id)
    closed = session.execute(
        update(PrivacyCharge)
        .where(PrivacyCharge.id == charge.id, PrivacyCharge.status == RESERVED)
        .values(status=status, settled_at=_now(), reason=reason)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if not closed:
        raise Conflict(N_("job {job}'s reservation was settled or refunded meanwhile", job=job_id))
    for budget_id in (charge.project_budget_id, charge.population_budget_id, *(charge.other_budget_ids or [])):
        _move(session, budget_id, charge.cost, spend=status == SPENT)
    session.refresh(charge)
    return charge


def settle(session: Session, job_id: int, *, actor: str = "system") -> None:
    """The job's reservation becomes spent; call it in the transaction that writes the job's release."""
    charge = _close(session, job_id, SPENT, None)
    _event(session, actor, "privacy.settle", session.get(Project, charge.project_id), job=job_id, cost=charge.cost)


def refund(session: Session, job_id: int, *, reason: str, actor: str = "system") -> None:
    """Give the job's reservation back: only for a job refused before it touched any data."""
    reason = (reason or "").strip()
    if not reason:
        raise BudgetError(N_("a refund needs its reason"))
    charge = _close(session, job_id, REFUNDED, reason[:500])
    _event(session, actor, "privacy.refund", session.get(Project, charge.project_id), job=job_id, cost=charge.cost,
           reason=reason[:200])  # fmt: skip


# -- replay from the audit log -------------------------------------------------------------------------------


@dataclass
class Balance:
    total: float = 0.0
    spent: float = 0.0
    reserved: float = 0.0


def replay(session: Session) -> dict[str, Balance]:
    """Every budget's balance rebuilt from the audit log alone (``privacy.*`` events in order)."""
    balances: dict[str, Balance] = {}
    charges: dict[int, tuple[list[str], float]] = {}
    events = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.action.like(f"{EVENT_PREFIX}%"), AuditEvent.outcome == Outcome.OK.value)
        .order_by(AuditEvent.id)
    )
    for event in events:
        detail = event.detail
        if event.action == "privacy.budget.open":
            balances.setdefault(detail["budget"], Balance()).total = float(detail["total"])
        elif event.action == "privacy.reserve":
            names = list(detail["budgets"])
            charges[int(detail["job"])] = (names, float(detail["cost"]))
            for name in names:
                balances.setdefault(name, Balance()).reserved += float(detail["cost"])
        elif event.action in ("privacy.settle", "privacy.refund"):
            names, cost = charges.pop(int(detail["job"]))
            for name in names:
                balances[name].reserved -= cost
                if event.action == "privacy.settle":
                    balances[name].spent += cost
    return balances


def check_replay(session: Session) -> list[str]:
    """Differences between the ledger and its replay from the log; empty when they agree (to 1e-9)."""
    replayed = replay(session)
    problems = []
    rows = {row.name: row for row in session.scalars(select(PrivacyBudget))}
    for name in sorted(set(replayed) | set(rows)):
        row, again = rows.get(name), replayed.get(name)
        if row is None:
            problems.append(f"{name}: in the log, not in the ledger")
            continue
        if again is None:
            problems.append(f"{name}: in the ledger, not in the log")
            continue
        for field in ("total", "spent", "reserved"):
            kept, rebuilt = getattr(row, field), getattr(again, field)
            if not math.isclose(kept, rebuilt, rel_tol=1e-9, abs_tol=1e-12):
                problems.append(f"{name}: {field} is {kept!r} in the ledger, {rebuilt!r} from the log")
    return problems
