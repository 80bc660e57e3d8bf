# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Access alerts for the data protection officer: rules evaluated over the audit event stream.

The evaluator reads events past a stored cursor (the last event id evaluated), applies every rule and stores
what fires in ``audit_alert``, each alert with its evidence: the ids of the events that triggered it, counts and
the time window, never an identifier (people appear only as the account references the events already carry).
Each alert is itself recorded as an ``alert.raise`` event by ``system``, in the transaction that stores it and
moves the cursor, so alerts, their record and the cursor commit together or not at all.

Rules (thresholds in :class:`AlertPolicy`):

- ``volume``: more data-access events (``view.*``, ``analysis.*``) or rows for one account in a sliding window
  than the policy allows;
- ``baseline``: data-access events in a window far above that account's own average over the past weeks;
- ``threshold_hover``: repeated releases whose smallest cell sits just above the disclosure threshold (someone
  narrowing a population until one more person would fall under it);
- ``scope``: refused attempts on a project the account is not a member of, and refused data access;
- ``denied``: a burst of refused acts by one actor;
- ``login_failures``: a burst of refused sign-ins or tokens for one actor (``anonymous`` included);
- ``off_hours``: a burst of data access outside working hours (local time of the policy's time zone);
- ``operator_governance``: every act of an operator (or of the operator's console) on projects, accounts or
  tokens: operators run the platform and must not quietly steer its governance;
- ``identity_reveal``: every request to see a vault identity from breach review, and every showing of one
  (or attempt): the two-person reveal is rare and always worth a look; likewise every request to lift a control
  lead's pseudonym for an investigation, and every showing of the lifted identity (hygie.control.lifting);
- ``fresh_approver``: a project approved (or its annual review approved) by an account created less than
  ``fresh_approver_days`` before (the approval's event carries ``reviewer_created_at``);
- ``shared_creator``: a project activated by approvers of one creation lineage (the activation's event carries
  ``approvers_shared_lineage``: one person controlled two approvals; allowed, but the DPO must know), or an
  approval refused because reviewer and requester or member share one (``separation: creator_lineage``);
- ``ledger_hold``: the first ledger finding of a project (an aggregate refused by the release ledger, or one it
  could not check: its ``analysis.ledger.check`` event says ``hold: started``): a refusal is a yes/no answer the
  author may have steered, so the DPO hears of it at once, not after a burst (the suspect is the job's author);
- ``platform_integrity``: events that say the platform itself is under attack or contradicted, each worth a look
  at once: an outside witness refused a checkpoint (a fork or rollback of the log, or a misconfiguration), or the
  daily cap on postal letters was reached (a mass request with leaked identities).

The separation-of-duties rules read only what the governance events state: this module knows events, not the
governance tables (the ``scope`` rule finds a project's members in its ``project.create`` and
``project.member.add`` events), so the audit layer imports nothing from governance.

Idempotence: every event is evaluated once (the cursor), a windowed rule starts counting afresh after the last
event its previous alert cited, and each alert carries a fingerprint of its rule and evidence under a unique
constraint, so the same evidence never raises two alerts, even if the cursor were wound back.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import JSON, DateTime, Integer, String, Text, func, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from hygie.audit.events import AuditEvent, Outcome, record
from hygie.config import Settings
from hygie.db import Base

if TYPE_CHECKING:
    from hygie.hub import Hub

_log = logging.getLogger(__name__)

SYSTEM_ACTOR = "system"
RAISE_ACTION = "alert.raise"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class AlertStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    DISMISSED = "dismissed"


class Rule(StrEnum):
    VOLUME = "volume"
    BASELINE = "baseline"
    THRESHOLD_HOVER = "threshold_hover"
    SCOPE = "scope"
    DENIED = "denied"
    LOGIN_FAILURES = "login_failures"
    OFF_HOURS = "off_hours"
    OPERATOR_GOVERNANCE = "operator_governance"
    IDENTITY_REVEAL = "identity_reveal"
    FRESH_APPROVER = "fresh_approver"
    SHARED_CREATOR = "shared_creator"
    LEDGER_HOLD = "ledger_hold"
    PLATFORM_INTEGRITY = "platform_integrity"


@dataclass(frozen=True)
class AlertPolicy:
    """The numbers behind the rules. Counts are per actor; windows slide over event times."""

    data_prefixes: tuple[str, ...] = ("view.", "analysis.")
    """Actions that reach project data."""

    volume_window_seconds: int = 3600
    volume_max_events: int = 200
    """``volume`` fires when an account makes more data-access events than this in the window..."""
    volume_max_rows: int = 5_000_000
    """...or when the rows those events report (detail ``rows``) add up to more than this."""

    baseline_days: int = 30
    """The account's own history the ``baseline`` rule compares with (per window of ``volume_window_seconds``)."""
    baseline_factor: float = 10.0
    """``baseline`` fires when a window holds more than this many times the account's average per window..."""
    baseline_min_events: int = 50
    """...and at least this many events (so a quiet account's third query is not "ten times its average")."""

    disclosure_threshold: int = 11
    """The platform's minimum people per released cell, for events whose detail does not state their own."""
    hover_margin: int = 2
    """A release "hovers" when its smallest cell has between threshold and threshold + margin people."""
    hover_repeats: int = 5
    hover_window_seconds: int = 86_400
    """``threshold_hover`` fires at this many hovering releases by one account on one project in the window."""

    denied_max: int = 5
    denied_window_seconds: int = 600
    """``denied`` fires at this many refused acts (sign-ins aside) by one actor in the window."""

    login_failures_max: int = 10
    login_window_seconds: int = 600
    """``login_failures`` fires at this many refused sign-ins or tokens by one actor in the window."""

    timezone: str = "Europe/Paris"
    working_hours: tuple[int, int] = (7, 20)
    """Local hours [start, end) in which data access is expected."""
    working_days: tuple[int, ...] = (0, 1, 2, 3, 4)
    """Weekdays (Monday 0) on which data access is expected."""
    off_hours_min_events: int = 3
    off_hours_window_seconds: int = 3600
    """``off_hours`` fires at this many data-access events off hours by one account in the window."""

    fresh_approver_days: int = Settings.model_fields["alert_fresh_approver_days"].default
    """``fresh_approver`` fires when an approval comes from an account younger than this (setting
    ``alert_fresh_approver_days``)."""

    governance_prefixes: tuple[str, ...] = ("project.", "account.", "token.")
    operator_actors: tuple[str, ...] = ("console",)
    """Actors treated as operators whatever their role: the console runs with the hub's keys, by the operator."""
    reveal_actions: tuple[str, ...] = (
        "breach.reveal.request",
        "breach.reveal.show",
        "control.lift.request",
        "control.lift.show",
    )
    integrity_actions: tuple[str, ...] = ("audit.witness.refused", "citizen.letter.cap")
    """Events the ``platform_integrity`` rule raises at once."""
    """``identity_reveal`` fires on each of these events, whatever its outcome (hygie.breach's two-person reveal)."""

    settle_seconds: float = 60.0
    """A gap in event ids may be a transaction still in flight (its event will commit later with a lower id);
    evaluation waits at such a gap until the event after it is this old, then takes the gap for a rollback."""
    batch_size: int = 5000
    """Events read per transaction."""

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> AlertPolicy:
        """The defaults, the platform's disclosure threshold, and any setting named ``alert_<field>``."""
        values: dict[str, Any] = {"disclosure_threshold": settings.disclosure_threshold}
        for f in fields(cls):
            value = getattr(settings, f"alert_{f.name}", None)
            if value is not None:
                values[f.name] = tuple(value) if isinstance(value, list) else value
        values.update(overrides)
        return cls(**values)


# -- storage ------------------------------------------------------------------------------------------


class AuditAlert(Base):
    """An alert raised by a rule. Unlike events it changes (the DPO acknowledges or dismisses it); each change
    is itself recorded as an event, so its history stays on the tamper-evident record."""

    __tablename__ = "audit_alert"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule: Mapped[str] = mapped_column(String(40), nullable=False, index=True)
    severity: Mapped[str] = mapped_column(String(10), nullable=False)
    actor: Mapped[str] = mapped_column(String(100), nullable=False, index=True)
    """The actor under suspicion, as the events name them (``account:<id>``, ``anonymous``, ``console``)."""
    project_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    raised_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, index=True)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    """``event_ids`` (sorted), ``count``, ``first_at``/``last_at``, ``window_seconds`` and rule-specific counts."""
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    """SHA-256 of the rule and the evidence event ids: the same evidence never raises two alerts."""
    status: Mapped[str] = mapped_column(String(20), nullable=False, index=True)
    handled_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    handled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class AuditAlertCursor(Base):
    """How far the evaluator has read the event stream (one row per evaluator name)."""

    __tablename__ = "audit_alert_cursor"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_event_id: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


CURSOR = "default"


@dataclass(frozen=True)
class Alert:
    """An alert as raised (a detached copy of the stored row)."""

    id: int
    rule: str
    severity: str
    actor: str
    project_id: int | None
    raised_at: datetime
    evidence: dict[str, Any]
    status: str = AlertStatus.OPEN.value

    @classmethod
    def of(cls, row: AuditAlert) -> Alert:
        return cls(row.id, row.rule, row.severity, row.actor, row.project_id, _aware(row.raised_at),
                   dict(row.evidence), row.status)  # fmt: skip


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes for timezone-aware columns; they were stored in UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def fingerprint(rule: str, event_ids: Iterable[int]) -> str:
    return hashlib.sha256(f"{rule}:{','.join(map(str, sorted(event_ids)))}".encode()).hexdigest()


# -- rules ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Found:
    """What a rule found, before it is stored."""

    rule: Rule
    severity: Severity
    actor: str
    project_id: int | None
    events: tuple[AuditEvent, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)
    window: timedelta | None = None

    def evidence(self) -> dict[str, Any]:
        times = [_aware(e.at) for e in self.events]
        out: dict[str, Any] = {
            "event_ids": sorted(e.id for e in self.events),
            "count": len(self.events),
            "first_at": min(times).isoformat(),
            "last_at": max(times).isoformat(),
        }
        if self.window is not None:
            out["window_seconds"] = int(self.window.total_seconds())
        actions: dict[str, int] = {}
        for e in self.events:
            actions[e.action] = actions.get(e.action, 0) + 1
        out["actions"] = actions
        out.update(self.extra)
        return out


def _rows(event: AuditEvent) -> int:
    value = (event.detail or {}).get("rows")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _min_cell(event: AuditEvent) -> int | None:
    detail = event.detail or {}
    for key in ("min_cell_people", "released_min_cell", "min_cell_count"):
        value = detail.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


@dataclass(frozen=True)
class _Windowed:
    """A rule counting one actor's matching events in a sliding window; fires at most once per run of events,
    then counts afresh from the next event."""

    rule: Rule
    severity: Severity
    window: timedelta
    matches: Callable[[AuditEvent], bool]
    where: ColumnElement[bool]
    """A superset of ``matches`` in SQL, to read the window's earlier events from the database."""
    fires: Callable[[Sequence[AuditEvent]], Mapping[str, Any] | None]
    """Extra evidence when the events in the window warrant an alert, else None."""
    per_project: bool = False


class _Evaluation:
    """One pass over a batch of new events, inside the caller's transaction."""

    def __init__(self, session: Session, policy: AlertPolicy, cursor: int, now: datetime) -> None:
        self.session = session
        self.policy = policy
        self.cursor = cursor
        self.now = now
        self.zone = ZoneInfo(policy.timezone)
        self._baselines: dict[str, float] = {}

    # predicates

    def is_data(self, e: AuditEvent) -> bool:
        return e.action.startswith(self.policy.data_prefixes)

    def data_sql(self) -> ColumnElement[bool]:
        return or_(*(AuditEvent.action.startswith(p) for p in self.policy.data_prefixes))

    def off_hours(self, e: AuditEvent) -> bool:
        local = _aware(e.at).astimezone(self.zone)
        start, end = self.policy.working_hours
        return local.weekday() not in self.policy.working_days or not start <= local.hour < end

    def hovers(self, e: AuditEvent) -> bool:
        cell = _min_cell(e)
        if cell is None or e.outcome != Outcome.OK:
            return False
        threshold = (e.detail or {}).get("threshold")
        if not isinstance(threshold, int) or isinstance(threshold, bool):
            threshold = self.policy.disclosure_threshold
        return threshold <= cell <= threshold + self.policy.hover_margin

    @staticmethod
    def is_login_failure(e: AuditEvent) -> bool:
        return e.action.startswith("auth.") and e.outcome == Outcome.DENIED

    @staticmethod
    def is_denied(e: AuditEvent) -> bool:
        return e.outcome == Outcome.DENIED and not e.action.startswith("auth.")

    def baseline(self, actor: str, before: datetime) -> float:
        """The actor's average data-access events per window over the baseline period before ``before``."""
        # Cached per actor and window-sized slot: one query per burst, not one per event of it.
        slot = f"{actor}|{int(before.timestamp()) // self.policy.volume_window_seconds}"
        if slot not in self._baselines:
            p = self.policy
            since = before - timedelta(days=p.baseline_days)
            count = self.session.scalar(
                select(func.count(AuditEvent.id)).where(
                    AuditEvent.actor == actor, self.data_sql(), AuditEvent.at >= since, AuditEvent.at < before
                )
            )
            self._baselines[slot] = (count or 0) / max(1.0, p.baseline_days * 86_400 / p.volume_window_seconds)
        return self._baselines[slot]

    def windowed_rules(self) -> list[_Windowed]:
        p = self.policy
        data = self.data_sql()

        def volume(events: Sequence[AuditEvent]) -> Mapping[str, Any] | None:
            rows = sum(_rows(e) for e in events)
            if len(events) > p.volume_max_events or rows > p.volume_max_rows:
                return {"rows": rows, "max_events": p.volume_max_events, "max_rows": p.volume_max_rows}
            return None

        def baseline(events: Sequence[AuditEvent]) -> Mapping[str, Any] | None:
            if len(events) < p.baseline_min_events:
                return None
            average = self.baseline(events[0].actor, _aware(events[0].at))
            if len(events) > p.baseline_factor * average:
                return {"baseline_per_window": round(average, 3), "factor": p.baseline_factor}
            return None

        def hover(events: Sequence[AuditEvent]) -> Mapping[str, Any] | None:
            if len(events) < p.hover_repeats:
                return None
            cells = sorted(c for c in (_min_cell(e) for e in events) if c is not None)
            return {"min_cells": cells, "threshold": p.disclosure_threshold, "margin": p.hover_margin}

        def at_least(n: int) -> Callable[[Sequence[AuditEvent]], Mapping[str, Any] | None]:
            return lambda events: {} if len(events) >= n else None

        seconds = timedelta(seconds=1)
        return [
            _Windowed(Rule.VOLUME, Severity.MEDIUM, p.volume_window_seconds * seconds, self.is_data, data, volume),
            _Windowed(Rule.BASELINE, Severity.LOW, p.volume_window_seconds * seconds, self.is_data, data, baseline),
            _Windowed(Rule.THRESHOLD_HOVER, Severity.HIGH, p.hover_window_seconds * seconds, self.hovers,
                      AuditEvent.outcome == Outcome.OK.value, hover, per_project=True),
            _Windowed(Rule.DENIED, Severity.MEDIUM, p.denied_window_seconds * seconds, self.is_denied,
                      AuditEvent.outcome == Outcome.DENIED.value, at_least(p.denied_max)),
            _Windowed(Rule.LOGIN_FAILURES, Severity.MEDIUM, p.login_window_seconds * seconds, self.is_login_failure,
                      AuditEvent.outcome == Outcome.DENIED.value, at_least(p.login_failures_max)),
            _Windowed(Rule.OFF_HOURS, Severity.LOW, p.off_hours_window_seconds * seconds,
                      lambda e: self.is_data(e) and self.off_hours(e), data, at_least(p.off_hours_min_events)),
        ]  # fmt: skip

    # evaluation

    def recent_alerts(self, rule: Rule, since: datetime) -> list[AuditAlert]:
        # An alert raised before ``since`` cites only events before it (events precede their evaluation).
        return list(
            self.session.scalars(select(AuditAlert).where(AuditAlert.rule == rule.value, AuditAlert.raised_at >= since))
        )

    def run_windowed(self, spec: _Windowed, new: Sequence[AuditEvent]) -> list[_Found]:
        def key(e: AuditEvent) -> tuple[str, int | None]:
            return (e.actor, e.project_id if spec.per_project else None)

        candidates = [e for e in new if spec.matches(e)]
        if not candidates:
            return []
        since = min(_aware(e.at) for e in candidates) - spec.window
        actors = sorted({e.actor for e in candidates})
        earlier = [
            e
            for e in self.session.scalars(
                select(AuditEvent).where(
                    AuditEvent.actor.in_(actors), AuditEvent.id <= self.cursor, AuditEvent.at > since, spec.where
                )
            )
            if spec.matches(e)
        ]
        # Count afresh after the last event a previous alert of this rule cited for the same actor (and project),
        # and stay quiet for one window after it: a long burst raises one alert per window, not one per event.
        restart: dict[tuple[str, int | None], tuple[int, datetime]] = {}
        for alert in self.recent_alerts(spec.rule, since):
            k = (alert.actor, alert.project_id if spec.per_project else None)
            last_id = max(alert.evidence.get("event_ids", [0]) or [0])
            quiet_until = datetime.fromisoformat(alert.evidence["last_at"]) + spec.window
            if k not in restart or last_id > restart[k][0]:
                restart[k] = (last_id, quiet_until)
        streams: dict[tuple[str, int | None], list[AuditEvent]] = {}
        for e in sorted({e.id: e for e in [*earlier, *candidates]}.values(), key=lambda e: e.id):
            if e.id > restart.get(key(e), (0, since))[0]:
                streams.setdefault(key(e), []).append(e)
        found: list[_Found] = []
        for k, stream in streams.items():
            quiet = restart.get(k, (0, since))[1]
            window: deque[AuditEvent] = deque()
            for e in stream:
                at = _aware(e.at)
                window.append(e)
                while _aware(window[0].at) <= at - spec.window:
                    window.popleft()
                if e.id <= self.cursor or at < quiet:
                    continue  # evaluated in an earlier pass (here to fill the window), or just alerted on
                extra = spec.fires(tuple(window))
                if extra is not None:
                    found.append(_Found(spec.rule, spec.severity, k[0], k[1], tuple(window), extra, spec.window))
                    window.clear()
                    quiet = at + spec.window
        return found

    def cited(self, rule: Rule, events: Sequence[AuditEvent]) -> set[int]:
        if not events:
            return set()
        since = min(_aware(e.at) for e in events)
        return {i for a in self.recent_alerts(rule, since) for i in a.evidence.get("event_ids", [])}

    def run_scope(self, new: Sequence[AuditEvent]) -> list[_Found]:
        denied = [e for e in new if e.outcome == Outcome.DENIED and e.project_id is not None]
        if not denied:
            return []
        accounts = {int(e.actor.split(":", 1)[1]) for e in denied if _account_id(e.actor) is not None}
        members = self.members({e.project_id for e in denied if e.project_id is not None}) if accounts else set()
        cited = self.cited(Rule.SCOPE, denied)
        groups: dict[tuple[str, int], list[AuditEvent]] = {}
        for e in denied:
            assert e.project_id is not None
            account = _account_id(e.actor)
            outside = account is None or (account, e.project_id) not in members
            if (outside or self.is_data(e)) and e.id not in cited:
                groups.setdefault((e.actor, e.project_id), []).append(e)
        return [
            _Found(Rule.SCOPE, Severity.MEDIUM, actor, project_id, tuple(events),
                   {"data_access": sum(1 for e in events if self.is_data(e))})
            for (actor, project_id), events in groups.items()
        ]  # fmt: skip

    def members(self, project_ids: set[int]) -> set[tuple[int, int]]:
        """(account, project) for whoever requested or joined each project, read from the governance events that
        recorded it (``project.create`` by the requester, ``project.member.add`` naming the account): this module
        knows events, not the governance tables."""
        query = select(AuditEvent.action, AuditEvent.actor, AuditEvent.project_id, AuditEvent.detail).where(
            AuditEvent.project_id.in_(project_ids),
            AuditEvent.action.in_(("project.create", "project.member.add")),
            AuditEvent.outcome == Outcome.OK,
        )
        out: set[tuple[int, int]] = set()
        for action, actor, project_id, detail in self.session.execute(query):
            account = _account_id(actor) if action == "project.create" else (detail or {}).get("account")
            if isinstance(account, int) and project_id is not None:
                out.add((account, project_id))
        return out

    def run_operator(self, new: Sequence[AuditEvent]) -> list[_Found]:
        p = self.policy
        acts = [
            e
            for e in new
            if (e.role == "operator" or e.actor in p.operator_actors) and e.action.startswith(p.governance_prefixes)
        ]
        cited = self.cited(Rule.OPERATOR_GOVERNANCE, acts)
        return [
            _Found(Rule.OPERATOR_GOVERNANCE, Severity.HIGH, e.actor, e.project_id, (e,), {"outcome": e.outcome})
            for e in acts
            if e.id not in cited
        ]

    def run_fresh_approver(self, new: Sequence[AuditEvent]) -> list[_Found]:
        limit = timedelta(days=self.policy.fresh_approver_days)
        hits: list[tuple[AuditEvent, timedelta]] = []
        for e in new:
            if e.action not in ("project.approve", "project.annual_review.approve") or e.outcome != Outcome.OK:
                continue
            created = _instant((e.detail or {}).get("reviewer_created_at"))
            if created is not None and _aware(e.at) - created < limit:
                hits.append((e, _aware(e.at) - created))
        cited = self.cited(Rule.FRESH_APPROVER, [e for e, _ in hits])
        return [
            _Found(Rule.FRESH_APPROVER, Severity.MEDIUM, e.actor, e.project_id, (e,),
                   {"account_age_seconds": int(age.total_seconds()), "fresh_days": self.policy.fresh_approver_days})
            for e, age in hits
            if e.id not in cited
        ]  # fmt: skip

    def run_shared_creator(self, new: Sequence[AuditEvent]) -> list[_Found]:
        hits: list[tuple[AuditEvent, dict[str, Any]]] = []
        for e in new:
            detail = e.detail or {}
            if e.action == "project.activate" and e.outcome == Outcome.OK and detail.get("approvers_shared_lineage"):
                hits.append((e, {"refused": False, "shared_lineage": list(detail["approvers_shared_lineage"]),
                                 "approvers": list(detail.get("approvers", []))}))  # fmt: skip
            elif e.outcome == Outcome.DENIED and detail.get("separation") == "creator_lineage":
                hits.append((e, {"refused": True, "shared_lineage": list(detail.get("shared_lineage", [])),
                                 "counterpart": detail.get("counterpart")}))  # fmt: skip
        cited = self.cited(Rule.SHARED_CREATOR, [e for e, _ in hits])
        # The suspect is the account at the root of the shared lineage (whoever created both), when one is named.
        return [
            _Found(Rule.SHARED_CREATOR, Severity.HIGH, str((extra["shared_lineage"] or [e.actor])[0]), e.project_id,
                   (e,), extra)
            for e, extra in hits
            if e.id not in cited
        ]  # fmt: skip

    def run_reveal(self, new: Sequence[AuditEvent]) -> list[_Found]:
        acts = [e for e in new if e.action in self.policy.reveal_actions]
        cited = self.cited(Rule.IDENTITY_REVEAL, acts)
        return [
            _Found(Rule.IDENTITY_REVEAL, Severity.HIGH, e.actor, e.project_id, (e,),
                   {"outcome": e.outcome, "step": e.action.rsplit(".", 1)[1]})
            for e in acts
            if e.id not in cited
        ]  # fmt: skip

    def run_ledger_hold(self, new: Sequence[AuditEvent]) -> list[_Found]:
        acts = [e for e in new if e.action == "analysis.ledger.check" and (e.detail or {}).get("hold") == "started"]
        cited = self.cited(Rule.LEDGER_HOLD, acts)
        return [
            _Found(Rule.LEDGER_HOLD, Severity.HIGH, str((e.detail or {}).get("author") or e.actor), e.project_id,
                   (e,), {"job": (e.detail or {}).get("job"), "outcome": e.outcome})
            for e in acts
            if e.id not in cited
        ]  # fmt: skip

    def run_integrity(self, new: Sequence[AuditEvent]) -> list[_Found]:
        acts = [e for e in new if e.action in self.policy.integrity_actions]
        cited = self.cited(Rule.PLATFORM_INTEGRITY, acts)
        return [
            _Found(Rule.PLATFORM_INTEGRITY, Severity.HIGH, e.actor, e.project_id, (e,),
                   {"event": e.action, "outcome": e.outcome})
            for e in acts
            if e.id not in cited
        ]  # fmt: skip

    def run(self, new: Sequence[AuditEvent]) -> list[_Found]:
        found: list[_Found] = []
        for spec in self.windowed_rules():
            found += self.run_windowed(spec, new)
        found += self.run_scope(new)
        found += self.run_operator(new)
        found += self.run_reveal(new)
        found += self.run_fresh_approver(new)
        found += self.run_shared_creator(new)
        found += self.run_ledger_hold(new)
        found += self.run_integrity(new)
        return found


def _instant(value: Any) -> datetime | None:
    """An ISO 8601 time from an event's detail, or None when absent or not a time."""
    if not isinstance(value, str):
        return None
    try:
        return _aware(datetime.fromisoformat(value))
    except ValueError:
        return None


def _account_id(actor: str) -> int | None:
    kind, _, rest = actor.partition(":")
    return int(rest) if kind == "account" and rest.isdigit() else None


# -- entry points ---------------------------------------------------------------------------------------


_lock = threading.Lock()
"""One evaluation at a time in this process (the background thread and any call on demand)."""


def _cursor(session: Session, now: datetime) -> AuditAlertCursor:
    # FOR UPDATE: a second evaluator (another server process) waits here instead of reading the same events.
    row = session.scalar(select(AuditAlertCursor).where(AuditAlertCursor.name == CURSOR).with_for_update())
    if row is None:
        row = AuditAlertCursor(name=CURSOR, last_event_id=0, updated_at=now)
        session.add(row)
        session.flush()
    return row


def _settled(events: Sequence[AuditEvent], cursor: int, now: datetime, settle: timedelta) -> list[AuditEvent]:
    """The events up to the first gap in ids that may still fill (see :attr:`AlertPolicy.settle_seconds`)."""
    out: list[AuditEvent] = []
    expected = cursor + 1
    for e in events:
        if e.id != expected and _aware(e.at) > now - settle:
            break
        out.append(e)
        expected = e.id + 1
    return out


def evaluate_batch(session: Session, policy: AlertPolicy | None = None, *, now: datetime | None = None) -> list[Alert]:
    """Evaluate the next batch of events in the caller's transaction (flushed, not committed).

    Returns the alerts raised; an empty list also when nothing new was ready. Use :func:`evaluate` to catch up.
    """
    return _evaluate_batch(session, policy or AlertPolicy(), now or datetime.now(UTC))[0]


def _evaluate_batch(session: Session, policy: AlertPolicy, now: datetime) -> tuple[list[Alert], bool]:
    """The alerts raised by the next batch, and whether the cursor moved (False: caught up, or waiting at a gap)."""
    cursor = _cursor(session, now)
    events = list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.id > cursor.last_event_id)
            .order_by(AuditEvent.id)
            .limit(policy.batch_size)
        )
    )
    ready = _settled(events, cursor.last_event_id, now, timedelta(seconds=policy.settle_seconds))
    if not ready:
        return [], False
    found = _Evaluation(session, policy, cursor.last_event_id, now).run(ready)
    raised: list[Alert] = []
    for f in found:
        evidence = f.evidence()
        print_ = fingerprint(f.rule, evidence["event_ids"])
        if session.scalar(select(AuditAlert.id).where(AuditAlert.fingerprint == print_)) is not None:
            continue
        row = AuditAlert(rule=f.rule.value, severity=f.severity.value, actor=f.actor, project_id=f.project_id,
                         raised_at=now, evidence=evidence, fingerprint=print_,
                         status=AlertStatus.OPEN.value)  # fmt: skip
        session.add(row)
        session.flush()
        # The alert goes on the record in its own transaction: nobody can store an alert without it being seen.
        record(session, actor=SYSTEM_ACTOR, action=RAISE_ACTION, object=f"alert:{row.id}", project_id=f.project_id,
               detail={"rule": row.rule, "severity": row.severity, "suspect": row.actor,
                       "event_ids": evidence["event_ids"]})  # fmt: skip
        raised.append(Alert.of(row))
    cursor.last_event_id = ready[-1].id
    cursor.updated_at = now
    session.flush()
    return raised, True


def evaluate(source: Hub | Session, policy: AlertPolicy | None = None, *, now: datetime | None = None) -> list[Alert]:
    """Evaluate every event recorded since the last evaluation; returns the alerts raised.

    With a hub, each batch is committed in a transaction of its own (alerts, their ``alert.raise`` events and the
    cursor together). With a session, the work joins the caller's transaction, which the caller commits.
    Calling it again without new events raises nothing.
    """
    raised: list[Alert] = []
    with _lock:
        while True:
            when = now or datetime.now(UTC)
            if isinstance(source, Session):
                batch, moved = _evaluate_batch(source, policy or AlertPolicy(), when)
            else:
                with source.session() as session:
                    batch, moved = _evaluate_batch(session, policy or AlertPolicy.from_settings(source.settings), when)
                    session.commit()
            raised += batch
            if not moved:
                return raised


class Alerter:
    """A background thread evaluating the rules every ``interval`` seconds."""

    def __init__(self, hub: Hub, interval: float, policy: AlertPolicy | None = None) -> None:
        self.hub = hub
        self.interval = interval
        self.policy = policy or AlertPolicy.from_settings(hub.settings)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Alerter:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="audit-alerts", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop after a last evaluation of whatever was recorded until now."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(self.interval)
            try:
                evaluate(self.hub, self.policy)
            except Exception:  # keep evaluating after a transient database error; the cursor has not moved
                _log.exception("audit alert evaluation failed")
            if stopping:
                return


def start_alerting(hub: Hub, interval: float = 30.0, policy: AlertPolicy | None = None) -> Alerter:
    """Start evaluating alerts in the background; call ``.stop()`` on the result at shutdown."""
    return Alerter(hub, interval, policy).start()
