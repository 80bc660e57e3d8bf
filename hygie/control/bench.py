# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Measure the rules end to end on a throwaway synthetic hub: generate, inject anomalies (truth apart), ingest,
approve a control project with two reviewers, run every rule through the data gate, compare with the truth.

Everything happens in a temporary folder with its own keys and SQLite database; nothing touches a real hub.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from hygie.config import Settings
from hygie.control.leads import run
from hygie.control.measure import Score, measure
from hygie.control.rules import RULES
from hygie.governance.accounts import CONSOLE, ROLE_SCOPES, Accounts, Actor
from hygie.governance.acts import act
from hygie.governance.policy import Role
from hygie.governance.projects import Projects
from hygie.hub import Hub
from hygie.ingest.pipeline import expand_batches, ingest_batches
from hygie.synth import generate
from hygie.synth.anomalies import inject

SCOPE: dict[str, Any] = {
    "tables": {
        "ER_PRS_F": ["CLE_DCI_JNT", "EXE_SOI_DTD", "PRS_NAT_REF", "PRS_ACT_QTE", "PRS_PAI_MNT", "BSE_REM_SGN",
                     "PFS_EXE_NUM", "PFS_PRE_NUM", "PSE_SPE_COD"],
        "IR_BEN_R": ["BEN_DCD_DTE"],
    },
    "population": {"period_start": "2024-01-01", "period_end": "2024-12-31"},
    "potential_identifiers": ["care_dates"],
}  # fmt: skip
"""What the rules read: care with exact dates (the one potential identifier), death dates cut to their month."""
BENCH_PASSPHRASE = "hygie-control-bench-throwaway-hub"  # noqa: S105  (a temporary hub, deleted after the run)
BENCH_PASSWORD = "hygie-control-bench-accounts"  # noqa: S105  (accounts of that temporary hub)


@dataclass(frozen=True)
class BenchResult:
    scores: list[Score]
    care_rows: int
    people: int
    seconds_rules: float
    seconds_total: float


def _actor(account: Any) -> Actor:
    role = Role(account.role)
    return Actor(account.id, role, ROLE_SCOPES[role], None, "session")


def bench(people: int, seed: int, rates: dict[str, float] | None = None) -> BenchResult:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hygie-control-bench-") as tmp:
        root = Path(tmp)
        delivery, truth = root / "delivery", root / "truth.json"
        summary = generate(delivery, people=people, years=1, seed=seed, start_year=2024)
        inject(delivery, truth, seed=seed, rates=rates)
        settings = Settings(data_dir=root / "hub", key_passphrase=SecretStr(BENCH_PASSPHRASE), kdf_memory_kib=8192,
                            kdf_iterations=1, kdf_lanes=1, password_memory_kib=1024, password_iterations=1)  # fmt: skip
        hub = Hub.init(settings)
        try:
            ingest_batches(hub, expand_batches([delivery]))
            with act(hub, CONSOLE, "bench.setup") as session:
                accounts = Accounts(session, hub.custody, hub.settings)
                made = {name: accounts.create(CONSOLE, username=name, role=role, password=BENCH_PASSWORD,
                                              organisation="Bench").account
                        for name, role in (("controller", Role.RESEARCHER), ("reviewer1", Role.REVIEWER),
                                           ("reviewer2", Role.REVIEWER))}  # fmt: skip
                people_of = {n: _actor(a) for n, a in made.items()}
            controller = people_of["controller"]
            with act(hub, controller, "project.create") as session:
                projects = Projects(hub, session)
                project = projects.create(
                    controller, title="Control bench", organisation="Bench", purpose="expenditure",
                    justification="Measure the control rules on a synthetic hub with injected anomalies.",
                    public_summary="Benchmark of control rules on synthetic data.", scope=SCOPE, duration_days=30,
                )  # fmt: skip
                projects.submit(controller, project.id)
                project_id = project.id
            for name in ("reviewer1", "reviewer2"):
                with act(hub, people_of[name], "project.approve") as session:
                    Projects(hub, session).decide(people_of[name], project_id, "approve", "bench: lawful, minimal")
            ran = time.perf_counter()
            done = run(hub, controller, project_id, list(RULES))  # opt-in rules too: all are measured
            seconds_rules = time.perf_counter() - ran
            scores = measure(hub, done.id, truth)
        finally:
            hub.close()
    care = sum(summary.rows.get(t, 0) for t in ("ER_PRS_F",))
    return BenchResult(scores, care, people, seconds_rules, time.perf_counter() - started)
