# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Attacks on sign-in and on the edges of membership.

- a second-factor code works twice (no record of used time steps);
- a locked account answers differently from an unknown one (names can be enumerated), and anyone can lock out any
  staff member by failing on purpose;
- a non-member gets 404 for a missing project and 403 for an existing one;
- /metrics is public on the API port;
- the DPO reads a released output of a project he is not in through GET /airlock/{id}.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from hygie.governance import credentials
from tests.portal.world import PASSWORD
from tests.security.conftest import APPROVE, MISSING, Served, new_source

WRONG = "not the password, but long enough"


def attempt(
    s: Served, username: str, source: str, password: str = WRONG, totp: str | None = "000000"
) -> httpx.Response:
    with s.client(source) as c:
        return c.post("/auth/login", json={"username": username, "password": password, "totp": totp})


def answer(r: httpx.Response) -> tuple[int, Any]:
    try:
        return r.status_code, r.json()
    except ValueError:
        return r.status_code, r.text


def test_a_second_factor_code_signs_in_once(served: Served) -> None:
    s = served
    s.console_account("replay-staff")
    code = credentials.totp_code(s.world.secrets["replay-staff"])
    source = new_source()
    first = attempt(s, "replay-staff", source, PASSWORD, code)
    assert first.status_code == 200, first.text
    second = attempt(s, "replay-staff", source, PASSWORD, code)  # the same code, replayed (from anywhere)
    assert not 200 <= second.status_code < 300, second.text
    third = attempt(s, "replay-staff", new_source(), PASSWORD, code)
    assert not 200 <= third.status_code < 300, third.text


def test_unknown_locked_disabled_and_existing_accounts_answer_alike(served: Served) -> None:
    s = served
    s.console_account("locked-staff")
    disabled = s.console_account("disabled-staff")
    assert s.call("dpo", "POST", f"/accounts/{disabled}/disable").status_code == 200
    attacker = new_source()
    for _ in range(8):  # enough failures to lock an account where failures lock accounts
        attempt(s, "locked-staff", attacker)
    asker = new_source()
    answers = {name: answer(attempt(s, name, asker)) for name in
               ("nobody-by-that-name", "locked-staff", "disabled-staff", "researcher2")}  # fmt: skip
    assert len({repr(a) for a in answers.values()}) == 1, answers
    assert answers["nobody-by-that-name"][0] == 401, answers
    # The disabled account's holder with the right password and code learns no more than a stranger.
    right = credentials.totp_code(s.world.secrets["disabled-staff"])
    held = answer(attempt(s, "disabled-staff", new_source(), PASSWORD, right))
    assert held == answer(attempt(s, "nobody-by-that-name", new_source(), PASSWORD, right)), held


def test_one_source_cannot_lock_out_another(served: Served) -> None:
    s = served
    s.console_account("victim-staff")
    attacker = new_source()
    refused = [attempt(s, "victim-staff", attacker).status_code for _ in range(12)]
    assert all(status in (401, 429) for status in refused), refused
    assert 429 in refused, f"twelve failures from one source and it is not slowed down: {refused}"
    holder = s.sign_in("victim-staff", source=new_source())
    assert holder.status_code == 200, holder.text


def _blank(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, re.sub(r"\d+", "N", r.text)


def test_a_non_member_cannot_tell_a_project_exists(served: Served) -> None:
    s = served
    hidden = s.draft("researcher1", title="A draft nobody else should know of")
    active = s.active("researcher1")
    for pid in (hidden, active):
        for suffix in ("", "/view", "/analyses", "/dummy-data", "/analyses/1", "/analyses/1/release"):
            theirs = s.call("researcher2", "GET", f"/projects/{pid}{suffix}")
            missing = s.call("researcher2", "GET", f"/projects/{MISSING}{suffix}")
            assert not 200 <= theirs.status_code < 300, theirs.text
            assert _blank(theirs) == _blank(missing), (suffix, theirs.text, missing.text)
        theirs = s.call("researcher2", "PATCH", f"/projects/{pid}", json={"title": "Taken over"})
        missing = s.call("researcher2", "PATCH", f"/projects/{MISSING}", json={"title": "Taken over"})
        assert _blank(theirs) == _blank(missing), (theirs.text, missing.text)


def test_metrics_are_not_public(served: Served) -> None:
    s = served
    for caller in (None, "researcher1", "citizen1"):
        r = s.call(caller, "GET", "/metrics")
        assert not 200 <= r.status_code < 300, (caller, r.text[:200])
        assert "# HELP" not in r.text and "# TYPE" not in r.text, caller


def released_output(s: Served) -> tuple[int, int, int]:
    """An SQL output of researcher1's project, released by two output checkers: (project, job, release)."""
    pid = s.active("researcher1")
    job = s.sql("researcher1", pid, "SELECT count(*) AS care_rows FROM ER_PRS_F")
    release = next(
        int(i["release_id"]) for i in s.call("reviewer1", "GET", "/airlock").json() if i["job_id"] == job["id"]
    )
    for checker in ("reviewer1", "reviewer2"):
        r = s.call(checker, "POST", f"/airlock/{release}/decisions", json=APPROVE)
        assert r.status_code == 200, r.text
    assert r.json()["status"] == "released", r.text
    return pid, int(job["id"]), int(release)


def test_the_dpo_cannot_read_a_released_output_of_a_project_he_is_not_in(served: Served) -> None:
    s = served
    pid, job, release = released_output(s)
    assert s.call("researcher1", "GET", f"/projects/{pid}/analyses/{job}/release").status_code == 200
    for caller in ("dpo", "reviewer3", "operator", "auditor", "researcher2"):
        for path in (f"/airlock/{release}", f"/projects/{pid}/analyses/{job}/release",
                     f"/projects/{pid}/analyses/{job}/download"):  # fmt: skip
            r = s.call(caller, "GET", path)
            assert not 200 <= r.status_code < 300, (caller, path, r.text)
            assert "care_rows" not in r.text, (caller, path, r.text)
