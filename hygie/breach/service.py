# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Breach incidents: import a leak, match it, report on it, notify the people in it, destroy it when due.

Every step is recorded (``breach.*`` events) in the transaction that does it; events carry counts, field
names and incident ids, never a value from the leak.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hygie.audit import record
from hygie.breach import blocking, oprf, parallel, store
from hygie.breach.compare import FieldAgreement, compare
from hygie.breach.mapping import CATEGORY, HEALTH_CATEGORIES, Column, Field, apply_corrections, infer
from hygie.breach.matcher import Matcher, Outcome, RowParser, Status
from hygie.breach.models import (
    BreachCheckTag,
    BreachFlag,
    BreachIncident,
    BreachNotice,
    BreachOutbox,
    BreachReveal,
    BreachRow,
)
from hygie.breach.reader import read_table
from hygie.db import bulk
from hygie.governance import letters
from hygie.governance.accounts import Actor, Scope
from hygie.governance.errors import Conflict, Denied, Invalid, NotFound
from hygie.governance.lineage import creator_id, shared_lineage
from hygie.governance.models import Account
from hygie.governance.projects import MIN_REASON
from hygie.hub import Hub
from hygie.i18n import N_
from hygie.identity.vault import Identity
from hygie.vocabulary import INCIDENT_STATUS, word

CHUNK = 20_000
CONFIRMING_IMPORT = N_("confirming a leak's import")
APPROVING_REVEAL = N_("approving a request to see an identity")
"""The two acts of a second person, as the refusals name them (``{what}``)."""


def now() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes for timezone-aware columns; they were stored in UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass
class Result:
    incident: BreachIncident
    outcomes: list[Outcome]

    def as_json(self) -> dict[str, Any]:
        """The import summary: counts and, per row, its status and confidence; no identifier values."""
        return {
            "incident": self.incident.name,
            "rows": self.incident.counts.get("rows", 0),
            **{s.value: self.incident.counts.get(s.value, 0) for s in Status},
            "results": [{"row": o.row, "status": o.status.value, "confidence": o.confidence} for o in self.outcomes],
        }


def may_fork() -> bool:
    """Forking is safe only from a process's main thread with no other threads holding locks: the console.
    A server request thread (other threads running: checkpointer, alerts, workers) matches in-process."""
    return threading.current_thread() is threading.main_thread() and threading.active_count() == 1


class Incidents:
    def __init__(self, hub: Hub, session: Session) -> None:
        self.hub = hub
        self.session = session
        self.timings: dict[str, float] = {}
        """Seconds per phase of the last import or remap (read+map, blocking index, matching phases, store)."""

    def get(self, incident_id: int) -> BreachIncident:
        incident = self.session.get(BreachIncident, incident_id)
        if incident is None:
            raise NotFound(N_("no breach incident {incident}", incident=incident_id))
        return incident

    def by_name(self, name: str) -> BreachIncident:
        incident = self.session.scalars(select(BreachIncident).where(BreachIncident.name == name)).first()
        if incident is None:
            raise NotFound(N_("no breach incident named {name}: `hygie breach list` shows them", name=repr(name)))
        return incident

    def import_file(self, actor: str, name: str, file_name: str, blob: bytes, *, staged: bool = False) -> Result:
        """Store the leak encrypted, map its columns, match every row; recorded as ``breach.import``.

        ``staged``: store and map only; nothing is matched (the vault is not read) until a second person confirms
        the import (:meth:`confirm`). Imports over HTTP are staged; the console's are not (docs/breach.md)."""
        name = name.strip()
        if not name or len(name) > 200:
            raise Invalid(N_("an incident needs a name of 1 to 200 characters"))
        if self.session.scalars(select(BreachIncident.id).where(BreachIncident.name == name)).first() is not None:
            raise Conflict(N_("an incident named {name} exists already: choose another name", name=repr(name)))
        started = time.perf_counter()
        table = read_table(file_name, blob)
        self.timings = {"read": time.perf_counter() - started}
        stored, wrapped = store.seal(self.hub.custody, self.hub.settings.data_dir, blob)
        incident = BreachIncident(
            name=name, status="staged" if staged else "imported", created_at=now(), created_by=actor,
            file_format=table.format,
            file_name=stored, file_key=wrapped,
            retain_until=now() + timedelta(days=self.hub.settings.breach_retention_days),
            mapping=[c.as_json() for c in infer(table.header, table.rows)], counts={}, categories={},
        )  # fmt: skip
        self.session.add(incident)
        self.session.flush()
        if staged:
            incident.counts = {"rows": len(table.rows)}
            result = Result(incident, [])
        else:
            result = self._match(incident, table.rows)
        record(self.session, actor=actor, action="breach.import", object=f"breach:{incident.id}",
               detail={"format": table.format, "header": table.header is not None, **incident.counts,
                       "fields": sorted({m["field"] for m in incident.mapping}), "staged": staged})  # fmt: skip
        return result

    def confirm(self, actor: Actor, incident: BreachIncident) -> Result:
        """A second person confirms a staged import: only now is the file matched against the vault. The
        confirmer is an account of a role in ``breach_import_confirmer_roles``, neither the importer nor an account
        the importer created (nor its creator, nor created by the importer's creator account)."""
        second_person_role(actor, self.hub.settings.breach_import_confirmer_roles, CONFIRMING_IMPORT)
        if incident.status != "staged":
            raise Conflict(
                N_(
                    "incident {incident} is {status}: there is no import to confirm",
                    incident=incident.id,
                    status=word(INCIDENT_STATUS, incident.status),
                )
            )
        second_person(self.session, actor, incident.created_by, self.hub.settings.breach_import_confirmer_roles,
                      CONFIRMING_IMPORT)  # fmt: skip
        table = read_table(f"x.{incident.file_format}", self._blob(incident))
        result = self._match(incident, table.rows)
        incident.status = "imported"
        incident.confirmed_by = actor.ref
        incident.confirmed_at = now()
        record(self.session, actor=actor.ref, role=actor.role_name, action="breach.import.confirm",
               object=f"breach:{incident.id}", detail={"importer": incident.created_by, **incident.counts})  # fmt: skip
        return result

    def remap(self, actor: str, incident: BreachIncident, corrections: dict[int, Field]) -> Result:
        """Apply the DPO's corrections to the mapping and match the (decrypted) file again."""
        _confirmed(incident)
        if incident.status != "imported":
            raise Conflict(
                N_(
                    "incident {incident} is {status}: its mapping can no longer change",
                    incident=incident.id,
                    status=word(INCIDENT_STATUS, incident.status),
                )
            )
        columns = [Column.from_json(m) for m in incident.mapping]
        unknown = set(corrections) - {c.column for c in columns}
        if unknown:
            raise Invalid(
                N_("the file has no column {column} (columns are numbered from 0)", column=sorted(unknown)[0])
            )
        incident.mapping = [c.as_json() for c in apply_corrections(columns, corrections)]
        table = read_table(f"x.{incident.file_format}", self._blob(incident))
        self.session.execute(delete(BreachRow).where(BreachRow.incident_id == incident.id))
        result = self._match(incident, table.rows)
        record(self.session, actor=actor, action="breach.remap", object=f"breach:{incident.id}",
               detail={"changed": sorted(corrections), **incident.counts})  # fmt: skip
        return result

    def _blob(self, incident: BreachIncident) -> bytes:
        if incident.file_key is None:
            raise Conflict(
                N_(
                    "incident {incident}'s file was destroyed on schedule: it cannot be matched again",
                    incident=incident.id,
                )
            )
        return store.open_sealed(self.hub.custody, self.hub.settings.data_dir, incident.file_name, incident.file_key)

    def _match(self, incident: BreachIncident, rows: list[list[str]]) -> Result:
        clock = time.perf_counter()
        columns = [Column.from_json(m) for m in incident.mapping]
        vault = self.hub.vault(self.session)
        refreshed = blocking.refresh(self.session, self.hub.custody, vault)
        self.timings["blocking index refresh"] = time.perf_counter() - clock
        settings = self.hub.settings
        workers = settings.breach_match_workers
        # Workers read committed data only: when this transaction has just extended the blocking index, the rows
        # are matched here (the next import, with the index current, will use them).
        if (
            workers > 1
            and may_fork()
            and len(rows) >= settings.breach_parallel_rows
            and not refreshed
            and parallel.available()
        ):
            clock = time.perf_counter()
            outcomes, spent = parallel.match(self.hub, columns, rows, settings.breach_match_score, workers, CHUNK)
            self.timings.update(spent)
            self.timings["parallel match (wall)"] = time.perf_counter() - clock
        else:
            outcomes = self._match_here(columns, rows)
        clock = time.perf_counter()
        encoded: dict[int, str] = {}  # categories lists are shared between rows: encode each once
        for o in outcomes:
            if id(o.categories) not in encoded:
                encoded[id(o.categories)] = json.dumps(o.categories)
        bulk.insert(self.session, "breach_row",
                    ("incident_id", "row", "status", "confidence", "reason", "person_index", "candidates",
                     "categories"),
                    ((incident.id, o.row, o.status.value, o.confidence, o.reason, o.person_index, o.candidates,
                      encoded[id(o.categories)]) for o in outcomes))  # fmt: skip
        counts = Counter(o.status.value for o in outcomes)
        incident.counts = {"rows": len(outcomes), **{s.value: counts.get(s.value, 0) for s in Status}}
        exposed: dict[bytes, set[str]] = {}
        for o in outcomes:
            if o.status is Status.MATCHED and o.person_index is not None:
                exposed.setdefault(o.person_index, set()).update(o.categories)
        incident.categories = dict(Counter(c for cats in exposed.values() for c in cats))
        incident.counts["people"] = len(exposed)
        self.session.flush()
        self.timings["store outcomes"] = time.perf_counter() - clock
        return Result(incident, outcomes)

    def _match_here(self, columns: list[Column], rows: list[list[str]]) -> list[Outcome]:
        matcher = Matcher(self.session, self.hub.custody, self.hub.vault(self.session), self.hub.pseudonymiser,
                          self.hub.settings.breach_match_score)  # fmt: skip
        outcomes: list[Outcome] = []
        parse = 0.0
        parser = RowParser(columns)
        for start in range(0, len(rows), CHUNK):
            clock = time.perf_counter()
            parsed = parser.parse(start + 1, rows[start : start + CHUNK])
            parse += time.perf_counter() - clock
            outcomes += matcher.match(parsed)
        self.timings["map"] = parse
        self.timings.update(matcher.timings)
        return outcomes

    def review_queue(self, incident: BreachIncident) -> list[BreachRow]:
        return list(self.session.scalars(
            select(BreachRow).where(BreachRow.incident_id == incident.id, BreachRow.status == Status.AMBIGUOUS.value)
            .order_by(BreachRow.row)
        ))  # fmt: skip

    def _leaked_row(self, incident: BreachIncident, row: int) -> tuple[BreachRow, list[tuple[Column, str]]]:
        """A row in review and its cells as the kept file holds them (decrypted in memory), column by column.
        For comparison only: no value leaves this class."""
        _confirmed(incident)
        found = self.session.scalars(
            select(BreachRow).where(BreachRow.incident_id == incident.id, BreachRow.row == row)
        ).first()
        if found is None or found.status != Status.AMBIGUOUS.value:
            raise NotFound(
                N_("row {row} of incident {incident} is not in the review queue", row=row, incident=incident.id)
            )
        rows = read_table(f"x.{incident.file_format}", self._blob(incident)).rows
        if not 1 <= row <= len(rows):
            raise NotFound(
                N_("row {row} of incident {incident} is not in the review queue", row=row, incident=incident.id)
            )
        cells = rows[row - 1]
        columns = [Column.from_json(m) for m in incident.mapping]
        return found, [(c, cells[c.column] if c.column < len(cells) else "") for c in columns]

    def compare(self, incident: BreachIncident, row: int) -> tuple[BreachRow, list[FieldAgreement]]:
        """A row in review against its candidate, field by field: which fields agree and how closely, never a
        value of either side (:mod:`hygie.breach.compare`). Read-only; the caller records the inspection."""
        found, cells = self._leaked_row(incident, row)
        if found.person_index is None:
            return found, []
        identity = self.hub.vault(self.session).identities_of([found.person_index]).get(found.person_index)
        if identity is None:
            return found, []
        return found, compare(cells, identity, self.hub.settings.breach_close_score)

    def decide(self, actor: str, incident: BreachIncident, row: int, confirm: bool) -> BreachRow:
        """The DPO's decision on a row in review: confirmed rows are notified like automatic matches."""
        _confirmed(incident)
        found = self.session.scalars(
            select(BreachRow).where(BreachRow.incident_id == incident.id, BreachRow.row == row)
        ).first()
        if found is None or found.status != Status.AMBIGUOUS.value:
            raise NotFound(
                N_("row {row} of incident {incident} is not in the review queue", row=row, incident=incident.id)
            )
        if confirm and found.person_index is None:
            raise Conflict(N_("row {row} has no candidate to confirm", row=row))
        found.decision = "confirmed" if confirm else "rejected"
        record(self.session, actor=actor, action="breach.review", object=f"breach:{incident.id}",
               detail={"row": row, "decision": found.decision})  # fmt: skip
        return found

    def notify(self, actor: str, incident: BreachIncident) -> int:
        """Notices, outbox messages, account flags and the anonymous check's tags for every person matched
        (automatically or confirmed in review); never for a row still in review. Returns people notified."""
        _confirmed(incident)
        if incident.status != "imported":
            raise Conflict(
                N_(
                    "incident {incident} is {status}: notices were already made",
                    incident=incident.id,
                    status=word(INCIDENT_STATUS, incident.status),
                )
            )
        people: dict[bytes, set[str]] = {}
        for r in self.session.scalars(select(BreachRow).where(BreachRow.incident_id == incident.id)):
            chosen = r.status == Status.MATCHED.value or r.decision == "confirmed"
            if chosen and r.person_index is not None:
                people.setdefault(r.person_index, set()).update(r.categories)
        until = now() + timedelta(days=self.hub.settings.breach_flag_days)
        vault = self.hub.vault(self.session)
        evaluator = oprf.evaluator(self.session, self.hub.custody)
        bits = self.hub.settings.breach_check_prefix_bits
        identities = vault.identities_of(list(people))
        posted: list[tuple[int, bytes]] = []  # the same notice by post (rendered when printed: governance.letters)
        for person_index, categories in people.items():
            notice = BreachNotice(incident_id=incident.id, person_index=person_index, categories=sorted(categories),
                                  created_at=now())  # fmt: skip
            self.session.add(notice)
            self.session.flush()
            self.session.add(BreachOutbox(notice_id=notice.id, status="pending", attempts=0))
            self.session.add(BreachFlag(person_index=person_index, incident_id=incident.id, until=until))
            posted.append((notice.id, person_index))
            identity = identities.get(person_index)
            if identity is not None:
                tag = oprf.tag_of(evaluator.evaluate_known_input(oprf.nir_input(identity.nir)))
                self.session.add(BreachCheckTag(incident_id=incident.id, prefix=oprf.prefix_of(tag, bits), tag=tag))
        letters.queue_breach_letters(self.session, posted)
        incident.status = "notified"
        incident.notified_at = now()
        record(self.session, actor=actor, action="breach.notify", object=f"breach:{incident.id}",
               detail={"people": len(people), "flag_days": self.hub.settings.breach_flag_days})  # fmt: skip
        return len(people)

    def report(self, incident: BreachIncident) -> dict[str, Any]:
        """What a notification to the data protection authority needs (GDPR art. 33(3)), from this incident."""
        counts = incident.counts
        health = sorted(c for c in incident.categories if c in HEALTH_CATEGORIES)
        retained = aware(incident.retain_until).date()
        # Each sentence is a message (hygie.i18n): the API reads English, the DPO's page the catalogue's French.
        return {
            "incident": incident.name,
            "imported_at": aware(incident.created_at).isoformat(),
            "notified_at": aware(incident.notified_at).isoformat() if incident.notified_at else None,
            "nature": N_(
                "confidentiality breach: a file of personal data published or circulated without authorisation"
            ),
            "people_concerned": {
                "identified_in_vault": counts.get("people", 0),
                "rows_in_file": counts.get("rows", 0),
                "rows_in_review": counts.get("ambiguous", 0),
                "rows_not_found": counts.get("unmatched", 0),
                "rows_without_identifier": counts.get("invalid", 0),
                "approximate": counts.get("ambiguous", 0) > 0 or counts.get("unmatched", 0) > 0,
            },
            "categories_of_data": dict(sorted(incident.categories.items())),
            "special_categories": health,
            "records_concerned": counts.get("rows", 0),
            "likely_consequences": [
                N_("identity theft against the insurer's services (change of bank details, address or contact)"),
                N_("phishing using the exposed contact details and the insurer's name"),
                *([N_("disclosure of health data (art. 9 GDPR): discrimination, distress")] if health else []),
            ],
            "measures_taken": [
                N_(
                    "people identified in the identity vault, notified in their portal and by e-mail or letter "
                    "(art. 34)"
                ),
                N_(
                    "stronger identity check on sensitive changes for {days} days",
                    days=self.hub.settings.breach_flag_days,
                ),
                N_("anonymous 'am I in it?' check for people without an account (OPRF, rate-limited)"),
                N_(
                    "leaked file kept encrypted only, destroyed on {year:04d}-{month:02d}-{day:02d}",
                    year=retained.year,
                    month=retained.month,
                    day=retained.day,
                ),
            ],
            "to_complete_by_the_dpo": [
                N_("controller and DPO contact details"),
                N_("when and how the breach was discovered"),
                N_("origin of the leak (processor, system) and its cause"),
                N_("whether notified within 72 hours, or why not"),
            ],
            "cnil_form": "https://notifications.cnil.fr/notifications/index",
        }

    # Two-person reveal of a candidate's vault identity.

    def reveal(self, reveal_id: int) -> BreachReveal:
        found = self.session.get(BreachReveal, reveal_id)
        if found is None:
            raise NotFound(N_("no identity reveal request {reveal}", reveal=reveal_id))
        return found

    def request_reveal(self, actor: Actor, incident: BreachIncident, row: int, reason: str) -> BreachReveal:
        """The DPO asks to see the vault identity of a row's candidate, saying why (the law's need: a notice by
        post, a request from the authority...). Nothing is shown until a second person approves."""
        _confirmed(incident)
        if len(reason.strip()) < MIN_REASON:
            raise Invalid(
                N_("a request to see an identity needs its reason, in at least {count} characters", count=MIN_REASON)
            )
        found = self.session.scalars(
            select(BreachRow).where(BreachRow.incident_id == incident.id, BreachRow.row == row)
        ).first()
        if found is None or found.person_index is None:
            raise NotFound(
                N_("row {row} of incident {incident} has no candidate in the vault", row=row, incident=incident.id)
            )
        open_ = self.session.scalars(select(BreachReveal.id).where(
            BreachReveal.incident_id == incident.id, BreachReveal.row == row, BreachReveal.requested_by == actor.ref,
            BreachReveal.status.in_(("requested", "approved")))).first()  # fmt: skip
        if open_ is not None:
            raise Conflict(
                N_("your request {reveal} for row {row} is still open: wait for its decision", reveal=open_, row=row)
            )
        reveal = BreachReveal(incident_id=incident.id, row=row, person_index=found.person_index, status="requested",
                              reason=reason.strip(), requested_by=actor.ref, requested_at=now())  # fmt: skip
        self.session.add(reveal)
        self.session.flush()
        record(self.session, actor=actor.ref, role=actor.role_name, action="breach.reveal.request",
               object=f"breach:{incident.id}", detail={"row": row, "reveal": reveal.id})  # fmt: skip
        return reveal

    def decide_reveal(self, actor: Actor, reveal_id: int, approve: bool, reason: str) -> BreachReveal:
        """A second person approves or refuses a request to see an identity (never the asker, nor an account of
        the asker's making; a role in ``breach_reveal_approver_roles``). The approver sees no identity. A role that
        may not approve is refused before the request is looked up (the same answer whatever the id)."""
        what = APPROVING_REVEAL
        second_person_role(actor, self.hub.settings.breach_reveal_approver_roles, what)
        reveal = self.reveal(reveal_id)
        if reveal.status != "requested":
            raise Conflict(
                N_("request {reveal} is {status}: it was decided already", reveal=reveal_id, status=reveal.status)
            )
        second_person(self.session, actor, reveal.requested_by, self.hub.settings.breach_reveal_approver_roles, what)
        if len(reason.strip()) < MIN_REASON:
            raise Invalid(N_("a decision on a request to see an identity needs its reason, in at least {count} "
                             "characters", count=MIN_REASON))  # fmt: skip
        reveal.status = "approved" if approve else "refused"
        reveal.decided_by = actor.ref
        reveal.decided_at = now()
        reveal.decision_reason = reason.strip()
        record(self.session, actor=actor.ref, role=actor.role_name,
               action="breach.reveal.approve" if approve else "breach.reveal.refuse",
               object=f"breach:{reveal.incident_id}", detail={"row": reveal.row, "reveal": reveal.id,
                                                              "asker": reveal.requested_by})  # fmt: skip
        return reveal

    def show_reveal(self, actor: Actor, reveal_id: int) -> tuple[BreachReveal, Identity]:
        """The approved identity, to the asker only, once, within ``breach_reveal_window_minutes`` of the
        approval; recorded as ``breach.reveal.show`` in the same transaction (before the caller returns it)."""
        reveal = self.reveal(reveal_id)
        if reveal.requested_by != actor.ref:
            raise Denied(N_("only the person who asked may see this identity"))
        if reveal.status == "requested":
            raise Denied(N_("this request has not been approved by a second person yet"))
        if reveal.status == "refused":
            raise Denied(N_("this request was refused"))
        if reveal.status == "shown":
            raise Conflict(N_("this identity was shown once already: ask again, with a reason, if the law needs it"))
        window = timedelta(minutes=self.hub.settings.breach_reveal_window_minutes)
        if reveal.decided_at is None or now() > aware(reveal.decided_at) + window:
            raise Conflict(
                N_(
                    "the approval is older than {minutes} minutes: ask again",
                    minutes=self.hub.settings.breach_reveal_window_minutes,
                )
            )
        identity = self.hub.vault(self.session).identities_of([reveal.person_index]).get(reveal.person_index)
        if identity is None:
            raise NotFound(N_("the candidate is no longer in the identity vault"))
        reveal.status = "shown"
        reveal.shown_at = now()
        record(self.session, actor=actor.ref, role=actor.role_name, action="breach.reveal.show",
               object=f"breach:{reveal.incident_id}", detail={"row": reveal.row, "reveal": reveal.id,
                                                              "approver": reveal.decided_by})  # fmt: skip
        return reveal, identity

    def reveals(self, *, incident_id: int | None = None, statuses: tuple[str, ...] | None = None) -> list[BreachReveal]:
        query = select(BreachReveal).order_by(BreachReveal.id)
        if incident_id is not None:
            query = query.where(BreachReveal.incident_id == incident_id)
        if statuses is not None:
            query = query.where(BreachReveal.status.in_(statuses))
        return list(self.session.scalars(query))

    def staged(self) -> list[BreachIncident]:
        return list(self.session.scalars(
            select(BreachIncident).where(BreachIncident.status == "staged").order_by(BreachIncident.id)))  # fmt: skip


def _confirmed(incident: BreachIncident) -> None:
    if incident.status == "staged":
        raise Conflict(
            N_(
                "incident {incident} waits for a second person to confirm its import: nothing is matched yet",
                incident=incident.id,
            )
        )


def second_person(session: Session, actor: Actor, asker: str, roles: list[str], what: str) -> None:
    """Refuse unless ``actor`` is a second person for an act asked by ``asker`` (an actor reference): a signed-in
    account of one of ``roles``, not the asker, and not of the asker's creation lineage
    (:mod:`hygie.governance.lineage`; accounts made by the console, the installation's act, are independent)."""
    second_person_role(actor, roles, what)
    if actor.ref == asker:
        raise Denied(N_("{what} needs a second person: not the one who asked", what=what))
    mine = session.get(Account, actor.account_id)
    if mine is None or mine.disabled:
        raise Denied(N_("{what} needs an active account", what=what))
    if mine.created_by == asker:
        raise Denied(
            N_("{what} needs a second person: an account created by the one who asked does not count", what=what)
        )
    asker_id = creator_id(asker)  # an "account:N" reference, or the console's
    if asker_id is not None and shared_lineage(session, mine.id, asker_id):
        raise Denied(N_("{what} needs a second person: your account and the asker's were created by the same person "
                        "(or one created the other)", what=what))  # fmt: skip


def second_person_role(actor: Actor, roles: list[str], what: str) -> None:
    """Refuse unless ``actor`` holds an account of one of ``roles`` with a governance or audit scope: checked before
    the object of the act is looked up or its state read, so that whoever may never act answers the same whatever
    the id (no incident or request can be found out that way)."""
    if actor.account_id is None or actor.role is None or actor.role.value not in roles:
        raise Denied(N_("{what} needs a second person's account ({roles})", what=what, roles=", ".join(roles)))
    if not actor.scopes & {Scope.GOVERNANCE, Scope.AUDIT}:
        raise Denied(N_("{what} needs a signed-in session or a governance token", what=what))


def categories_label(categories: list[str]) -> str:
    return ", ".join(categories) or "none"


ALL_CATEGORIES = sorted(set(CATEGORY.values()))
