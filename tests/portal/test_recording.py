# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Every HTTP endpoint and CLI command that touches data or governance leaves an event on the record.

The walks start from the OpenAPI schema and from the CLI's own command tree, so a new endpoint or command
fails here until it records (or is listed as exempt, with the reason, in the schema or below).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from hygie.audit import AuditEvent
from hygie.cli import app as cli_app
from tests.conftest import TEST_PASSPHRASE
from tests.portal.world import PASSWORD, World, people

BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/auth/login"): {"username": "dpo", "password": "not the password", "totp": "000000"},
    ("POST", "/me/tokens"): {"name": "walk", "scopes": ["governance"], "days": 1},
    ("POST", "/accounts"): {"username": "walk-researcher", "role": "researcher", "email": "walk@example.org"},
    ("POST", "/accounts/enrol"): {"code": "not-a-code", "password": PASSWORD},
    ("POST", "/accounts/{account_id}/confirm"): {"email": "walk@example.org"},
    ("POST", "/citizens/enrol"): {"nir": "1" * 15, "last_name": "X", "birth_date": "1970-01-01"},
    ("POST", "/citizens/activate"): {
        "code": "ABCD-EFGH-JKMN-PQRS",
        "nir": "1" * 15,
        "username": "walk-citizen",
        "password": PASSWORD,
    },
    ("POST", "/projects"): {
        "title": "t",
        "organisation": "o",
        "purpose": "research",
        "justification": "j" * 20,
        "public_summary": "s" * 20,
        "scope": {},
        "duration_days": 30,
    },
    ("PATCH", "/projects/{project_id}"): {"title": "A better title"},
    ("POST", "/projects/{project_id}/decisions"): {"decision": "approve", "reason": "fine with me, really"},
    ("POST", "/projects/{project_id}/annual-review"): {"decision": "approve", "reason": "fine with me, really"},
    ("POST", "/projects/{project_id}/members"): {"account_id": 1},
    ("POST", "/projects/{project_id}/suspend"): {"reason": "checking the walk of routes"},
    ("POST", "/projects/{project_id}/resume"): {"reason": "checking the walk of routes"},
    ("POST", "/projects/{project_id}/close"): {"reason": "checking the walk of routes"},
    ("POST", "/alerts/{alert_id}/acknowledge"): {"note": "seen, checking with the team"},
    ("POST", "/alerts/{alert_id}/dismiss"): {"note": "expected maintenance"},
    ("POST", "/projects/{project_id}/disclosure-delay"): {"until": "2099-01-01T00:00:00Z", "reason": "x" * 20},
    ("POST", "/projects/{project_id}/analyses/aggregate"): {"group_by": ["sex"], "measures": ["people"]},
    ("POST", "/projects/{project_id}/analyses/sql"): {"sql": "SELECT count(*) AS n FROM ER_PRS_F"},
    ("POST", "/projects/{project_id}/dummy-data/aggregate"): {"group_by": ["sex"], "measures": ["people"]},
    ("POST", "/projects/{project_id}/dummy-data/sql"): {"sql": "SELECT count(*) AS n FROM ER_PRS_F"},
    ("POST", "/airlock/{release_id}/decisions"): {"decision": "approve", "reason": "checked every cell"},
    ("PUT", "/breach/incidents/{incident_id}/mapping"): {"columns": {"0": "comment"}},
    ("POST", "/breach/incidents/{incident_id}/review/{row}"): {"decision": "reject"},
    ("POST", "/breach/incidents/{incident_id}/review/{row}/reveal"): {"reason": "a letter the law requires"},
    ("POST", "/breach/reveals/{reveal_id}/decision"): {"decision": "refuse", "reason": "no legal need shown"},
    ("POST", "/projects/{project_id}/control/runs"): {"rules": ["volume"]},
    ("POST", "/projects/{project_id}/control/leads/{lead_id}/lift"): {"reason": "an investigation, case 2026-17"},
    ("POST", "/control/lifts/{lift_id}/decision"): {"decision": "refuse", "reason": "no investigation shown here"},
    ("POST", "/projects/{project_id}/control/reviewers"): {"account_id": 1, "training": "CERT-style course, 2 days"},
    ("POST", "/projects/{project_id}/control/samples/{sample_id}/claims/{claim_key}/decision"): {"decision": "proper"},
    ("POST", "/me/contact-details"): {},
    # RFC 9497's blinded element of test vector A.1.2.1: any valid ristretto255 element will do.
    ("POST", "/breach-check/evaluate"): {"blinded": "hj8zDMGhJZ7VpZmKI6z9N/tDUaeTpbPAkLZC3cQ5uUU="},
    ("POST", "/breach-check/lookup"): {"attempt": "not-an-attempt", "prefix": 0},
}


def events(world: World) -> int:
    with world.hub.session() as session:
        return int(session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def operations(world: World) -> list[tuple[str, str, dict[str, Any]]]:
    schema = world.client.get("/openapi.json").json()
    return [
        (method.upper(), path, op)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def test_every_endpoint_records_or_says_why_not(world: World) -> None:
    pid = world.active_project()
    params = {
        "project_id": pid,
        "account_id": world.ids["researcher2"],
        "token_id": 999,
        "alert_id": 999,
        "job_id": 999,
        "release_id": 999,
        "incident_id": 999,
        "reveal_id": 999,
        "row": 1,
        "lead_id": 999,
        "lift_id": 999,
        "sample_id": 999,
        "claim_key": 1,
    }
    walked = 0
    for method, path, op in operations(world):
        if "x-hygie-audit" in op:
            assert op["x-hygie-audit"].startswith("not recorded: "), (method, path)
            continue
        url = re.sub(r"{(\w+)}", lambda m: str(params[m.group(1)]), path)
        body = BODIES.get((method, path))
        for who in ("dpo", None):
            before = events(world)
            if path == "/auth/logout" and who:
                token = world.login("dpo")
                r = world.client.post(url, headers={"Authorization": f"Bearer {token}"})
                world.login("dpo")
            else:
                r = world.call(who, method, url, json=body)
            assert r.status_code < 500, (method, path, r.text)
            assert r.status_code != 422 or "detail" in r.json(), (method, path)
            assert events(world) > before, f"{method} {path} as {who or 'anonymous'} left no event ({r.status_code})"
        walked += 1
    assert walked >= 25


EXEMPT_COMMANDS = {
    "synth": "writes synthetic delivery files; opens no hub",
    "serve": "runs the server (records service.start, then every request records its own acts)",
    "background": "runs the checkpointer, alerts and sweep until SIGTERM (records service.start, as serve)",
    "demo": "runs init, synth, ingest and stats, each walked here",
    "keys new-key-file": "writes a new master key file before any hub exists",
    "witness key": "an outside witness's own key file; opens no hub",
    "witness serve": "runs an outside witness; opens no hub (it logs its refusals and keeps them as evidence)",
    "analysis submit": "an HTTP client: the server records the submission, run and release",
    "analysis jobs": "an HTTP client: the server records the listing",
    "analysis show": "an HTTP client: the server records the read",
    "analysis download": "an HTTP client: the server records the download",
    "control rate simulate": "the estimator's coverage on a synthetic population; opens no hub",
    "control rate show": "an HTTP client: the server records the read (GET /projects/{id}/control/estimates)",
    "control leads runs": "an HTTP client: the server records the read (GET /projects/{id}/control/runs)",
    "control leads bench": "precision and recall on a throwaway synthetic hub; never opens the configured one",
    "control leads run": "an HTTP client: the server records the run (POST /projects/{id}/control/runs)",
    "control leads list": "an HTTP client: the server records the read (GET /projects/{id}/control/leads)",
    "control leads lift": "an HTTP client: the server records the request (POST .../leads/{lead}/lift)",
    "control leads lifts": "an HTTP client: the server records the listing (GET /control/lifts)",
    "control leads decide": "an HTTP client: the server records the decision (POST /control/lifts/{id}/decision)",
    "control leads identity": "an HTTP client: the server records the showing (POST .../lifts/{id}/identity)",
    "control rate samples": "an HTTP client: the server records the read (GET /projects/{id}/control/samples)",
    "control rate draw": "an HTTP client: the server records the draw (POST /projects/{id}/control/samples)",
    "control rate designate": "an HTTP client: the server records it (POST /projects/{id}/control/reviewers)",
    "control rate queue": "an HTTP client: the server records the read (GET .../samples/{sample}/claims)",
    "control rate claim": "an HTTP client: the server records the read (GET .../samples/{sample}/claims/{claim})",
    "control rate review": "an HTTP client: the server records the decision (POST .../claims/{claim}/decision)",
    "control rate release": "an HTTP client: the server records the release (POST .../samples/{sample}/estimate)",
    "restore": "fills an empty hub, whose log records backup.restore once verified (tests/backup); refused, it has "
    "no hub to record in",
}


def command_paths(group: Any, prefix: str = "") -> list[str]:
    out = []
    for name, command in group.commands.items():
        full = f"{prefix}{name}"
        if hasattr(command, "commands"):
            out += command_paths(command, full + " ")
        else:
            out.append(full)
    return out


def test_every_cli_command_records_or_says_why_not(world: World, tmp_path: Path) -> None:
    settings = world.hub.settings
    env = {
        "HYGIE_DATA_DIR": str(settings.data_dir),
        "HYGIE_KEY_PASSPHRASE": TEST_PASSPHRASE,
        "HYGIE_KDF_MEMORY_KIB": "8192",
        "HYGIE_KDF_ITERATIONS": "1",
        "HYGIE_KDF_LANES": "1",
        "HYGIE_PASSWORD_MEMORY_KIB": "1024",
        "HYGIE_PASSWORD_ITERATIONS": "1",
        "HYGIE_DATABASE_URL": settings.database_url or "",
        "HYGIE_BACKUP_PASSPHRASE": "walk backup passphrase",
    }
    if not settings.database_url:
        del env["HYGIE_DATABASE_URL"]
    person = people(world.delivery)[5]
    leak = tmp_path / "leak.csv"
    leak.write_text("NIR,NOM\n" + person["BEN_NIR"] + "," + person["NOM"] + "\n", encoding="utf-8")
    samples: dict[str, tuple[list[str], str | None]] = {
        "init": ([], None),
        "ingest": ([str(world.delivery / "000-beneficiaries")], None),
        "warehouse stats": ([], None),
        "warehouse verify": ([], None),
        "keys list": ([], None),
        "keys rotate": (["no-such-key"], None),
        "keys destroy": (["no-such-key"], None),
        "keys rotate-master": ([], None),
        "accounts bootstrap": (
            ["--operator", "op2", "--dpo", "dpo2", "--operator-password", PASSWORD, "--dpo-password", PASSWORD],
            None,
        ),
        "accounts create": (["walk-reviewer", "--role", "reviewer", "--password", PASSWORD], None),
        "accounts enrol-citizen": (
            [
                "walk-citizen",
                "--last-name",
                person["NOM"],
                "--birth-date",
                person["DATE_NAISSANCE"],
                "--password",
                PASSWORD,
            ],
            person["BEN_NIR"] + "\n",
        ),
        "accounts confirm": (["99999"], "walk@example.org\n"),
        "accounts resend-enrolment": (["99999"], None),
        "accounts list": ([], None),
        "accounts disable": (["99999"], None),
        "accounts enable": (["99999"], None),
        "projects list": ([], None),
        "demo-code": (["dpd"], None),
        "projects sweep": ([], None),
        "projects budget-check": ([], None),
        "audit verify": ([], None),
        "audit checkpoint": ([], None),
        "audit public-key": ([], None),
        "audit prove": (["--index", "0"], None),
        "breach import": ([str(leak), "--incident", "walk", "--json"], None),
        "breach list": ([], None),
        "breach report": (["walk"], None),
        "breach notify": (["no-such-incident"], None),
        "breach send": ([], None),
        "breach sweep": ([], None),
        "citizen-index rebuild": ([], None),
        "citizen-index merge": ([], None),
        "vault rebuild-pivot": ([], None),
        "outbox list": ([], None),
        "outbox print": (["--out", str(tmp_path / "printed")], None),
        "backup": ([str(tmp_path / "walk.hygiebak")], None),
    }
    group = typer.main.get_command(cli_app)
    runner = CliRunner()
    for command in command_paths(group):
        if command in EXEMPT_COMMANDS:
            continue
        assert command in samples, f"`hygie {command}` is neither walked nor exempt: add it to this test"
        args, stdin = samples[command]
        before = events(world)
        result = runner.invoke(cli_app, [*command.split(), *args], env=env, input=stdin)
        assert result.exception is None or isinstance(result.exception, SystemExit), (command, result.output)
        assert events(world) > before, f"`hygie {command}` left no event (exit {result.exit_code}: {result.output})"


@pytest.mark.parametrize("path", ["/healthz", "/policy", "/register"])
def test_exempt_public_routes_stay_public(world: World, path: str) -> None:
    assert world.client.get(path).status_code == 200


def refused_events(w: World) -> list[AuditEvent]:
    with w.hub.session() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == "request.refused")))


def test_refused_input_is_recorded_without_its_values_and_a_flood_only_so_much(world: World) -> None:
    w = world
    nir = "1850575123456"
    client = TestClient(w.client.app, client=("192.0.2.44", 5000))
    before = len(refused_events(w))
    r = client.post("/auth/login", json={"username": nir, "password": 12345})  # a number is not a password
    assert r.status_code == 422 and nir not in r.text
    assert {"loc", "msg", "type"} == set(r.json()["detail"][0])
    r = client.post("/auth/login", json={"username": "someone", "password": "x", f"x{nir}": 1})  # unknown field
    assert r.status_code == 422 and nir not in r.text
    big = "x" * (w.hub.settings.request_body_max_kib * 1024 + 1)
    r = client.post("/auth/login", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413
    events = refused_events(w)[before:]
    assert [(e.detail["route"], e.detail["status"]) for e in events] == [
        ("/auth/login", 422),
        ("/auth/login", 422),
        ("/auth/login", 413),
    ]
    assert events[0].detail["reason"].startswith("invalid ") and nir not in str(events[0].as_dict())
    # A page form sent back with its errors is a refusal too (the sign-in page without a password).
    client.cookies.set("hygie_csrf", "c" * 64)
    assert client.post("/connexion", data={"csrf": "c" * 64, "username": nir}).status_code == 422
    last = refused_events(w)[-1]
    assert (last.detail["route"], last.detail["status"]) == ("/connexion", 422) and nir not in str(last.as_dict())
    # So is a form refused for its CSRF token (forged from another site, or expired): 403, recorded, no values.
    r = client.post("/connexion", data={"csrf": "d" * 64, "username": nir, "password": nir})
    assert r.status_code == 403 and nir not in r.text
    last = refused_events(w)[-1]
    assert (last.detail["route"], last.detail["status"]) == ("/connexion", 403) and "csrf" in last.detail["reason"]
    assert nir not in str(last.as_dict()) and "d" * 64 not in str(last.as_dict())
    # A flood from one address leaves at most refused_records_per_minute events in the minute; answers stay clear.
    limit = w.hub.settings.refused_records_per_minute
    flood = TestClient(w.client.app, client=("192.0.2.45", 5000))
    seen = len(refused_events(w))
    for _ in range(limit + 20):
        r = flood.get("/projects/not-a-number", headers=w.headers("researcher1"))
        assert r.status_code == 422
    from_flood = [e for e in refused_events(w)[seen:] if e.detail["route"] == "/projects/{project_id}"]
    assert len(from_flood) == limit
    assert re.fullmatch(r"invalid [a-z_, ]+", from_flood[0].detail["reason"])
