# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Control runs: the rules of :mod:`hygie.control.rules` over a control project's view, and the leads they find.

A run happens inside an active project whose purpose is one control runs under (``control_purposes``), for a
member who passes its data gate (:func:`hygie.control.sample.require_control_project`); it reads the project's
view only (:func:`hygie.governance.views.open_view`). Its leads are stored with the run and the
``control.leads.run`` event (rules, thresholds, counts per rule) in one transaction, before anything is returned.
Reading leads is recorded too (``control.leads.read``).

A lead names people by pseudonym only: beneficiaries by their project pseudonym (the view's ``BEN_NIR_PSA``),
providers by a project pseudonym of their number (:func:`provider_pseudonyms`, HMAC under the project's
pseudonym key with its own label, so it joins nothing outside the project). Lifting one is
:mod:`hygie.control.lifting`'s two-person decision.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from hygie.audit import record
from hygie.control.rules import (
    BENEFICIARY,
    RULES,
    Context,
    Finding,
    RuleError,
    check_rules,
    normalise_contact,
    rings_of,
)
from hygie.control.sample import require_control_project, require_output_reader
from hygie.db import Base
from hygie.db.bulk import insert
from hygie.db.sealed import SealedJSON
from hygie.governance.accounts import Actor
from hygie.governance.acts import act
from hygie.governance.errors import Conflict, Invalid, NotFound
from hygie.governance.models import Project
from hygie.governance.policy import Scope
from hygie.governance.views import ViewError, newest_ready, open_view, project_pseudonym_key, rekey
from hygie.hub import Hub
from hygie.i18n import N_
from hygie.identity.pseudonym import encode_pseudonyms
from hygie.ingest.contract import BENEFICIARY_TABLE
from hygie.keys import KeyPurpose

PROVIDER_LABEL = b"hygie/control-provider/v1|"
"""Domain of a provider's project pseudonym (never equal to a patient's, made under the same key)."""
CONTACT_KEY = "control-contact"
"""Custody key (PSEUDONYM) of the keyed contacts compared by the 'paper' rule; the values never leave memory."""
CONTACT_LABEL = b"hygie/control-contact/v1|"
VAULT_PAGE = 5_000


class ControlRun(Base):
    __tablename__ = "control_run"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), nullable=False, index=True)
    view_generation: Mapped[int] = mapped_column(Integer, nullable=False)
    run_by: Mapped[int] = mapped_column(ForeignKey("account.id"), nullable=False)
    run_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    rules: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    thresholds: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    counts: Mapped[dict[str, int]] = mapped_column(JSON, nullable=False)


EVIDENCE = SealedJSON("control_lead.evidence")
"""The type of a lead's evidence column, used by the bulk insert of a run's leads too."""


class ControlLead(Base):
    __tablename__ = "control_lead"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("control_run.id"), nullable=False, index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), nullable=False, index=True)
    rule: Mapped[str] = mapped_column(String(30), nullable=False)
    subject_kind: Mapped[str] = mapped_column(String(20), nullable=False)
    subject: Mapped[str] = mapped_column(String(40), nullable=False)
    """A project pseudonym: the beneficiary's, or the provider's (:func:`provider_pseudonyms`)."""
    provider: Mapped[str | None] = mapped_column(String(40), nullable=True)
    score: Mapped[float] = mapped_column(Float, nullable=False)
    evidence: Mapped[dict[str, Any]] = mapped_column(EVIDENCE, nullable=False)
    """{"claims": [claim keys], "claims_total": n, "numbers": {what fired the rule}}: sealed at rest (amounts and
    claims of the project's view; a copy of the database does not show them)."""


LEAD_COLUMNS = ("run_id", "project_id", "rule", "subject_kind", "subject", "provider", "score", "evidence")


def _now() -> datetime:
    return datetime.now(UTC)


def _said(exc: Exception) -> str:
    """An exception's message as it was raised (a catalogued message keeps its identifier), not ``str(exc)``."""
    if len(exc.args) == 1 and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)


def provider_pseudonyms(hub: Hub, project_id: int, numbers: list[str]) -> list[str]:
    """Project pseudonyms of providers' numbers: HMAC under the project's pseudonym key, in one custody call."""
    if not numbers:
        return []
    macs = hub.custody.mac(project_pseudonym_key(project_id), [PROVIDER_LABEL + n.encode("utf-8") for n in numbers])
    return encode_pseudonyms(macs)


def contact_rings(hub: Hub, session: Session, project_id: int, version: int) -> dict[str, tuple[str, int]]:
    """Project pseudonym -> (contact kind, people sharing it) for people sharing a phone or an address with at
    least ``control_paper_min_shared - 1`` others. Contacts are read from the vault, normalised and keyed
    (HMAC) in memory; only the keyed values are compared and nothing of them is stored or returned. ``version``:
    the hub pseudonym key version the project's view was built through."""
    hub.custody.ensure(CONTACT_KEY, KeyPurpose.PSEUDONYM)
    vault = hub.vault(session)
    newest: dict[bytes, list[tuple[str, str]]] = {}
    after = 0
    while True:
        page = vault.records(after, VAULT_PAGE)
        if not page:
            break
        for row_id, person_index, identity in page:
            after = row_id
            contacts = [("phone", normalise_contact("phone", identity.phone)),
                        ("address", normalise_contact("address", identity.address, identity.postcode))]  # fmt: skip
            newest[person_index] = [(k, v) for k, v in contacts if v]
    messages = [CONTACT_LABEL + f"{kind}|{value}".encode() for pairs in newest.values() for kind, value in pairs]
    macs = iter(hub.custody.mac(CONTACT_KEY, messages) if messages else [])
    keyed = {who.hex(): [(kind, next(macs)) for kind, _ in pairs] for who, pairs in newest.items()}
    rings = rings_of(keyed, hub.settings.control_paper_min_shared)
    if not rings:
        return {}
    # Only the ring members' pseudonyms, from their records again: no NIR is kept for the length of the run.
    found = vault.pseudonyms_of([bytes.fromhex(who) for who in rings], version)
    members = sorted(found)
    project_pseudonyms = rekey(hub, project_id, [found[i] for i in members])
    return dict(zip(project_pseudonyms, (rings[i.hex()] for i in members), strict=True))


def death_exact(project: Project) -> bool:
    return Scope.model_validate(project.scope).column_form(BENEFICIARY_TABLE, "BEN_DCD_DTE") == "exact"


def thresholds(hub: Hub) -> dict[str, Any]:
    s = hub.settings
    return {
        "max_daily_acts": dict(s.control_max_daily_acts),
        "duplicate_natures": [list(r) for r in s.control_duplicate_natures],
        "outlier_min_acts": s.control_outlier_min_acts,
        "outlier_min_peers": s.control_outlier_min_peers,
        "outlier_robust_z": s.control_outlier_robust_z,
        "outlier_min_spread": s.control_outlier_min_spread,
        "outlier_skip_specialties": list(s.control_outlier_skip_specialties),
        "isolation_min_score": s.control_isolation_min_score,
        "isolation_min_z": s.control_isolation_min_z,
        "isolation_min_metrics": s.control_isolation_min_metrics,
        "isolation_trees": s.control_isolation_trees,
        "isolation_seed": s.control_isolation_seed,
        "paper_min_shared": s.control_paper_min_shared,
    }


def run(hub: Hub, actor: Actor, project_id: int, rules: list[str] | None = None) -> ControlRun:
    """Run the rules (all by default) over the project's view; store and record the leads, then return the run.

    The project's gate comes before the rule names are checked: whoever may not run rules there hears that, not
    what is wrong with their names, and an unknown name is a refusal on the record like any other."""
    with act(hub, actor, "control.leads.run", object=f"project:{project_id}", project_id=project_id) as session:
        project = require_control_project(session, hub.settings, actor, project_id)
        try:
            names = check_rules(rules)
        except RuleError as exc:
            raise Invalid(_said(exc)) from None
        view = newest_ready(session, project.id)
        if view is None:
            raise Conflict(N_("project {project} has no ready view", project=project_id))
        rings = contact_rings(hub, session, project.id, view.pseudonym_version) if "paper" in names else {}
        try:
            con = open_view(hub, session, project)
        except ViewError as exc:
            raise Conflict(_said(exc)) from None
        findings: list[Finding] = []
        try:
            ctx = Context(con, hub.settings, death_exact(project), rings)
            for name in names:
                findings.extend(RULES[name](ctx))
        except RuleError as exc:
            raise Conflict(_said(exc)) from None
        finally:
            con.close()
        # Providers' numbers become project pseudonyms here, before anything is stored, recorded or returned.
        numbers = sorted({f.subject for f in findings if f.subject_kind != BENEFICIARY} |
                         {f.provider for f in findings if f.provider})  # fmt: skip
        pseudonym = dict(zip(numbers, provider_pseudonyms(hub, project.id, numbers), strict=True))
        assert actor.account_id is not None  # require_view_access admits signed-in researchers only
        counts = Counter(f.rule for f in findings)
        done = ControlRun(project_id=project.id, view_generation=view.generation, run_by=actor.account_id,
                          run_at=_now(), rules=names, thresholds=thresholds(hub),
                          counts={n: counts.get(n, 0) for n in names})  # fmt: skip
        session.add(done)
        session.flush()
        # Through the driver: a national run stores hundreds of thousands of leads (224,000 duplicates on the
        # 55-million-row benchmark hub), and the ORM's per-row work is not needed for rows never read back here.
        # Each evidence is sealed by the column's own type, as the ORM would.
        dialect = session.get_bind().dialect
        insert(session, "control_lead", LEAD_COLUMNS, (
            (done.id, project.id, f.rule, f.subject_kind,
             f.subject if f.subject_kind == BENEFICIARY else pseudonym[f.subject],
             pseudonym[f.provider] if f.provider else None, round(f.score, 3),
             json.dumps(EVIDENCE.process_bind_param(
                 {"claims": f.claims, "claims_total": f.claims_total, "numbers": f.numbers}, dialect)))
            for f in findings
        ))  # fmt: skip
        record(session, actor=actor.ref, role=actor.role_name, action="control.leads.run",
               object=f"control-run:{done.id}", project_id=project.id, purpose=project.purpose,
               detail={"rules": names, "view_generation": view.generation, "leads": done.counts,
                       "thresholds": done.thresholds})  # fmt: skip
        session.flush()
        session.expunge(done)
        return done


CLAIMS_SHOWN = 12
"""Claim keys of a lead's evidence shown with it (the leads page and the API), beside how many there are."""


@dataclass(frozen=True)
class Leads:
    project: Project
    run: ControlRun | None
    by_rule: dict[str, list[ControlLead]]


def leads(hub: Hub, actor: Actor, project_id: int, run_id: int | None = None) -> Leads:
    """The leads of a run (the newest by default) by rule, best score first; recorded as a read."""
    with act(hub, actor, "control.leads.read", object=f"project:{project_id}", project_id=project_id) as session:
        project = require_control_project(session, hub.settings, actor, project_id)
        query = select(ControlRun).where(ControlRun.project_id == project.id)
        if run_id is not None:
            query = query.where(ControlRun.id == run_id)
        found = session.scalars(query.order_by(ControlRun.id.desc()).limit(1)).first()
        if run_id is not None and found is None:
            raise NotFound(N_("no control run {run} in project {project}", run=run_id, project=project_id))
        by_rule: dict[str, list[ControlLead]] = defaultdict(list)
        if found is not None:
            order = (ControlLead.rule, ControlLead.score.desc(), ControlLead.id)
            for lead in session.scalars(select(ControlLead).where(ControlLead.run_id == found.id).order_by(*order)):
                by_rule[lead.rule].append(lead)
        record(session, actor=actor.ref, role=actor.role_name, action="control.leads.read",
               object=f"control-run:{found.id}" if found else f"project:{project.id}", project_id=project.id,
               purpose=project.purpose, detail={"leads": sum(len(v) for v in by_rule.values())})  # fmt: skip
        session.flush()
        session.expunge_all()
        return Leads(project, found, dict(by_rule))


@dataclass(frozen=True)
class RunCounts:
    """A run as it may be listed outside the project's data gate: when, on which view, and its leads per rule
    counted as any count leaving a project is (rounded; ``None`` under the threshold)."""

    id: int
    run_at: datetime
    view_generation: int
    leads: dict[str, int | None]


def run_counts(hub: Hub, actor: Actor, project_id: int) -> list[RunCounts]:
    """A project's control runs, newest first, for its researchers and the roles that oversee it (never the operator
    nor the console: they receive no project's outputs); recorded as a read before it is returned."""
    from hygie.disclosure.counts import shown_count

    with act(hub, actor, "control.runs.read", object=f"project:{project_id}", project_id=project_id) as session:
        project = require_output_reader(session, actor, project_id)
        threshold = max(hub.settings.disclosure_threshold, project.threshold or 0)
        base = hub.settings.disclosure_rounding_base
        found = [
            RunCounts(
                r.id,
                r.run_at,
                r.view_generation,
                {rule: shown_count(int(n), threshold, base) for rule, n in r.counts.items()},
            )
            for r in session.scalars(
                select(ControlRun).where(ControlRun.project_id == project.id).order_by(ControlRun.id.desc())
            )
        ]
        record(session, actor=actor.ref, role=actor.role_name, action="control.runs.read",
               object=f"project:{project.id}", project_id=project.id, purpose=project.purpose,
               detail={"runs": len(found)})  # fmt: skip
        return found
