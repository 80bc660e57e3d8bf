# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The demo's people, project and breach: accounts of every role, two enrolled citizens, one project taken through
review, and one data breach imported and notified by the DPO (a leak of the first synthetic people, the first
demo citizen among them), so the platform can be tried end to end on synthetic data.

Demo only, and said aloud: every demo account shares one printed password, and the staff accounts' second-factor
secrets are kept in ``<data dir>/demo-accounts.json`` so that ``hygie demo-code`` can print a current code.
A real hub never has that file (``hygie demo-code`` refuses without it).
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hygie.governance import credentials
from hygie.governance.accounts import CONSOLE, ROLE_SCOPES, Accounts, Actor
from hygie.governance.acts import act
from hygie.governance.citizens import Citizens
from hygie.governance.models import Account, Project
from hygie.governance.policy import Role
from hygie.governance.projects import Projects
from hygie.hub import Hub

DEMO_PASSWORD = "demo-hygie-2026"  # noqa: S105  (demo only, printed on purpose)
DEMO_FILE = "demo-accounts.json"
STAFF: dict[str, Role] = {
    "operateur": Role.OPERATOR,
    "dpd": Role.DPO,
    "relecteur1": Role.REVIEWER,
    "relecteur2": Role.REVIEWER,
    "chercheuse": Role.RESEARCHER,
    "auditeur": Role.AUDITOR,
}


@dataclass(frozen=True)
class DemoReport:
    accounts: dict[str, str]
    """username -> role"""
    project_id: int | None
    approval_to_view_seconds: float | None
    view_people: int | None
    breach_people: int | None = None
    """People notified of the demo breach (the first demo citizen is one of them)."""


def _demo_file(hub: Hub) -> Path:
    return hub.settings.data_dir / DEMO_FILE


def _as(account: Account) -> Actor:
    role = Role(account.role)
    return Actor(account.id, role, ROLE_SCOPES[role], None, "session")


def set_up(hub: Hub, deliveries: Path) -> DemoReport:
    """Create the demo accounts and project once; later runs find them and change nothing."""
    path = _demo_file(hub)
    if path.exists():
        known = json.loads(path.read_text(encoding="utf-8"))
        return DemoReport(known["roles"], known.get("project_id"), None, None)
    secrets: dict[str, str] = {}
    roles: dict[str, str] = {}
    with act(hub, CONSOLE, "demo.setup") as session:
        accounts = Accounts(session, hub.custody, hub.settings)
        for username, role in STAFF.items():
            created = accounts.create(CONSOLE, username=username, role=role, password=DEMO_PASSWORD,
                                      organisation="Démonstration")  # fmt: skip
            secrets[username] = credentials.totp_secret_text(accounts.totp_secret(created.account))
            roles[username] = role.value
        for i, person in enumerate(_first_people(deliveries, 2), start=1):
            Citizens(hub, session).enrol(
                nir=person["BEN_NIR"], last_name=person["NOM"], birth_date=person["DATE_NAISSANCE"],
                username=f"citoyen{i}", password=DEMO_PASSWORD,
            )  # fmt: skip
            roles[f"citoyen{i}"] = Role.CITIZEN.value
    # The file is written with mode 0600 before anything goes into it: it holds second-factor secrets.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"roles": roles, "totp": secrets}, f)
    project_id, seconds, people = _demo_project(hub)
    notified = _demo_breach(hub, _first_people(deliveries, BREACH_PEOPLE))
    known = json.loads(path.read_text(encoding="utf-8"))
    known["project_id"] = project_id
    path.write_text(json.dumps(known), encoding="utf-8")
    return DemoReport(roles, project_id, seconds, people, notified)


def _first_people(deliveries: Path, n: int) -> list[dict[str, str]]:
    """The first beneficiaries of the synthetic delivery (the demo knows their identities: it made them)."""
    for ben in sorted(deliveries.glob("*/IR_BEN_R.csv")):
        with ben.open(encoding="utf-8", newline="") as f:
            rows = [r for _, r in zip(range(n), csv.DictReader(f), strict=False)]
        if len(rows) == n:
            return rows
    raise RuntimeError(f"no IR_BEN_R.csv with {n} people under {deliveries}")


def _demo_project(hub: Hub) -> tuple[int, float, int]:
    with hub.session() as session:
        users = {a.username: a for a in session.scalars(select(Account).where(Account.username.in_(STAFF)))}
    researcher, first, second = (_as(users[u]) for u in ("chercheuse", "relecteur1", "relecteur2"))
    scope: dict[str, Any] = {
        "tables": {
            "IR_BEN_R": ["BEN_SEX_COD", "BEN_NAI_ANN", "BEN_RES_DPT"],
            "ER_PRS_F": ["CLE_DCI_JNT", "EXE_SOI_DTD", "PRS_NAT_REF", "PRS_PAI_MNT", "BSE_REM_MNT"],
            "ER_PHA_F": ["CLE_DCI_JNT", "PHA_PRS_C13", "PHA_ACT_QSN"],
        },
        "population": {"period_start": "2023-01-01", "period_end": "2024-12-31", "age_min": 40},
    }
    with act(hub, researcher, "project.create") as session:
        projects = Projects(hub, session)
        project: Project = projects.create(
            researcher,
            title="Statines après 40 ans (démonstration)",
            organisation="Démonstration",
            purpose="research",
            justification="Décrire la délivrance de statines par âge, sexe et département, pour évaluer les "
            "recommandations de prévention cardiovasculaire.",
            public_summary="Qui reçoit des statines après 40 ans, et où ? Étude de démonstration sur données "
            "synthétiques.",
            scope=scope,
            duration_days=365,
        )
        projects.submit(researcher, project.id)
        project_id = project.id
    reason = "Finalité légale, périmètre minimal, population justifiée."
    with act(hub, first, "project.approve") as session:
        Projects(hub, session).decide(first, project_id, "approve", reason)
    started = time.perf_counter()
    with act(hub, second, "project.approve") as session:
        Projects(hub, session).decide(second, project_id, "approve", reason)
    seconds = time.perf_counter() - started
    from hygie.governance.views import view_summary

    with hub.session() as session:
        summary = view_summary(session, Projects(hub, session).get(project_id))
    return project_id, seconds, int(summary["people"]) if summary else 0


BREACH_PEOPLE = 300
"""The demo leak holds the first people of the synthetic delivery (damaged as leaks are), so the anonymous check
answers yes for the NIRs at the top of ``IR_BEN_R.csv`` and the first demo citizen has a notice."""


def _demo_breach(hub: Hub, people: list[dict[str, str]]) -> int:
    from hygie.breach.service import Incidents
    from hygie.breach.synthetic import make_leak

    with hub.session() as session:
        dpo = _as(session.scalars(select(Account).where(Account.username == "dpd")).one())
        operator = _as(session.scalars(select(Account).where(Account.username == "operateur")).one())
    # Everyone chosen (size = all of them); the first demo citizen's row undamaged, so that their notice is sure.
    leak = make_leak(people[1:], [], seed=2026, size=len(people), duplicates=3, conflicts=2)
    first = people[0]
    leak.rows.insert(0, [first["BEN_NIR"], first["NOM"], first["PRENOM"], first["DATE_NAISSANCE"],
                         *[""] * (len(leak.header) - 4)])  # fmt: skip
    leak.truth.insert(0, first["BEN_NIR"])
    # As over HTTP: the DPO's import is staged (nothing matched) until a second person, the operator, confirms it.
    with act(hub, dpo, "breach.import") as session:
        staged = Incidents(hub, session).import_file(dpo.ref, "Fuite chez un prestataire (démonstration)",
                                                     "extraction.csv", leak.csv(), staged=True)  # fmt: skip
        incident_id = staged.incident.id
    with act(hub, operator, "breach.import.confirm") as session:
        incidents = Incidents(hub, session)
        incidents.confirm(operator, incidents.get(incident_id))
    with act(hub, dpo, "breach.notify") as session:
        incidents = Incidents(hub, session)
        return incidents.notify(dpo.ref, incidents.get(incident_id))


def current_code(hub: Hub, username: str) -> str:
    """A current TOTP code for a demo staff account (refused on any hub the demo did not make)."""
    path = _demo_file(hub)
    if not path.exists():
        raise LookupError("this hub was not made by `hygie demo`: second-factor codes come from the person's app")
    secrets = json.loads(path.read_text(encoding="utf-8"))["totp"]
    if username not in secrets:
        raise LookupError(f"{username} is not a demo staff account ({', '.join(sorted(secrets))})")
    import base64

    return credentials.totp_code(base64.b32decode(secrets[username]))
