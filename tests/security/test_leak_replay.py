# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Black-box replay of the leak attack of issue 14, over HTTP against served portals.

The outsider holds the demo leak (made the demo's way, hygie/demo.py ``_demo_breach``: hygie/breach/synthetic.py
damage, duplicates, conflicting rows) of the served hub's first ``LEAKED`` people, imported, confirmed by a second
person and notified. They try every leaked row's NIR, family name and birth date at ``POST /citizens/enrol`` (each
from an address of its own: a botnet), adapting to the API (before issue 14 it took a chosen username and password
and opened the account at once), then sign in with what they chose and read reimbursements and breach notices.
Expected: 0 accounts opened, 0 reads, and one answer whatever matched.

Then, with a known NIR and name, they guess the birth date: stopped after a few tries, including across a server
restart (a new server process on the same data dir) and across two server processes serving one PostgreSQL hub at
the same time; sign-in guessing is slowed across those two processes the same way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from hygie.breach.synthetic import make_leak
from hygie.governance.models import Account
from hygie.hub import Hub
from tests import postgres
from tests.conftest import TEST_PASSPHRASE, make_settings
from tests.portal.world import PASSWORD, people
from tests.security.conftest import Served, new_source
from tests.serving import free_port

LEAKED = 40
"""People of the served hub in the leak (the demo's leak has 300: the same file, cut for the test's time); the leak
leaves out the world's two citizens, whom the other security tests sign in (a breach-flagged person's new device
needs a step-up)."""
A_FEW = 10
"""'A few tries': the most birth-date guesses for one NIR that may get anything but 429."""


def iso(value: str) -> str | None:
    """A leaked birth date in the API's form, as an attacker would rewrite it (three forms occur in the leak)."""
    for sep in ("/", "."):
        if sep in value:
            d, m, y = value.split(sep)
            return f"{y}-{m}-{d}"
    return value if len(value) == 10 and value[4] == "-" else None


def asks_for_credentials(r: httpx.Response) -> bool:
    """The pre-issue-14 enrolment: a 422 saying a username and a password are missing."""
    if r.status_code != 422:
        return False
    return any(e.get("loc", [])[-1:] in (["username"], ["password"]) for e in r.json().get("detail", []))


def enrol(c: httpx.Client, nir: str, last_name: str, birth_date: str, username: str) -> httpx.Response:
    """What an attacker sends to open an account with leaked data, adapting to the API the portal has."""
    body = {"nir": nir, "last_name": last_name, "birth_date": birth_date}
    r = c.post("/citizens/enrol", json=body)
    if asks_for_credentials(r):
        r = c.post("/citizens/enrol", json={**body, "username": username, "password": PASSWORD})
    return r


def citizen_accounts(hub: Hub) -> int:
    with hub.session() as session:
        return int(session.scalar(select(func.count()).select_from(Account).where(Account.role == "citizen")) or 0)


@pytest.fixture(scope="module")
def leak(served: Served) -> list[list[str]]:
    """The demo leak over the served hub's first LEAKED people, imported by the DPO, confirmed by a second person
    (the auditor), notified. Returns its rows."""
    everyone = people(served.world.delivery)[2 : 2 + LEAKED]  # not the world's citizens (other tests sign them in)
    made = make_leak(everyone[1:], [], seed=2026, size=len(everyone), duplicates=3, conflicts=2)
    first = everyone[0]
    made.rows.insert(0, [first["BEN_NIR"], first["NOM"], first["PRENOM"], first["DATE_NAISSANCE"],
                         *[""] * (len(made.header) - 4)])  # fmt: skip
    r = served.call("dpo", "POST", "/breach/incidents", files={"file": ("extraction.csv", made.csv())},
                    data={"incident": "Fuite chez un prestataire (rejeu)"})  # fmt: skip
    assert r.status_code == 200, r.text
    incident = r.json()["id"]
    assert served.call("auditor", "POST", f"/breach/incidents/{incident}/confirm").status_code == 200
    r = served.call("dpo", "POST", f"/breach/incidents/{incident}/notify")
    assert r.status_code == 200 and r.json()["people"] >= LEAKED // 2, r.text
    return made.rows


def test_every_leaked_person_tried_opens_no_account_and_reads_nothing(served: Served, leak: list[list[str]]) -> None:
    hub = served.world.hub
    before = citizen_accounts(hub)
    answers: list[tuple[int, bytes]] = []
    tried = 0
    for n, row in enumerate(leak):
        nir, last_name, birth = row[0], row[1], iso(row[3])
        if len(nir) not in (13, 15) or not nir.isdigit() or not last_name or birth is None:
            continue  # nothing to try with: no usable NIR (missing, or cut by a spreadsheet), name or date
        tried += 1
        with served.client(new_source()) as c:
            r = enrol(c, nir, last_name, birth, username=f"victim-{n}")
            answers.append((r.status_code, r.content))
            # Whatever the answer, the attacker signs in with what it chose and reads what it can.
            login = c.post("/auth/login", json={"username": f"victim-{n}", "password": PASSWORD})
            if login.status_code == 200:
                token = {"Authorization": f"Bearer {login.json()['token']}"}
                for path in ("/me/reimbursements", "/me/breach-notices"):
                    read = c.get(path, headers=token)
                    answers.append((-read.status_code, path.encode()))  # a read made: must never happen
    assert tried >= LEAKED // 2  # most rows carry a NIR, a name and a date the attacker can use
    opened = [a for a in answers if a[0] == 200 and b"account_id" in a[1]]
    reads = [a for a in answers if a[0] < 0]
    assert (len(opened), len(reads)) == (0, 0), (len(opened), len(reads))
    assert citizen_accounts(hub) == before
    # One answer whatever matched: a leaked row that is right and one that is wrong read the same (429 aside).
    assert len({a for a in answers if a[0] != 429}) == 1, {a for a in answers if a[0] != 429}


def guesses(true_birth: str, k: int = 31) -> list[str]:
    """k candidate birth dates around the true one, the true one second (early: its answer is compared)."""
    day = date.fromisoformat(true_birth)
    others = [(day + timedelta(days=i)).isoformat() for i in range(-15, 16) if i]
    return [others[0], true_birth, *others[1 : k - 1]]


def guess_birth_date(urls: list[str], nir: str, last_name: str, dates: list[str], *, rotate_sources: bool) -> list[int]:
    """Status of each guess, sent to ``urls`` in turn; from one address, or each from a new one (a botnet)."""
    statuses = []
    source = new_source()
    for i, birth in enumerate(dates):
        with httpx.Client(
            base_url=urls[i % len(urls)],
            timeout=60,
            transport=httpx.HTTPTransport(local_address=new_source() if rotate_sources else source),
        ) as c:
            statuses.append(enrol(c, nir, last_name, birth, username=f"guess-{nir[-4:]}-{i}").status_code)  # fmt: skip
    return statuses


def stopped_after_a_few(statuses: list[int]) -> int:
    """How many guesses got anything but 429; asserts every guess after the first 429 got 429 too."""
    first = statuses.index(429) if 429 in statuses else len(statuses)
    assert first <= A_FEW, statuses
    assert set(statuses[first:]) == {429}, statuses
    return first


# -- server processes ---------------------------------------------------------------------------------------------


def start_server(data_dir: Path, log: Path, database_url: str | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``hygie serve`` in a process of its own on ``data_dir`` (and ``database_url``); see :func:`ready`."""
    port = free_port()
    env = {**os.environ, "HYGIE_DATA_DIR": str(data_dir), "HYGIE_KEY_PASSPHRASE": TEST_PASSPHRASE}
    env.pop("HYGIE_DATABASE_URL", None)
    if database_url:
        env["HYGIE_DATABASE_URL"] = database_url
    launcher = "import sys; from hygie.cli import app; sys.argv = ['hygie', 'serve', '--port', sys.argv[1]]; app()"
    with log.open("ab") as err:
        process = subprocess.Popen([sys.executable, "-c", launcher, str(port)], env=env, stdout=err, stderr=err)
    return process, f"http://127.0.0.1:{port}"


def ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        assert process.poll() is None, log.read_text(errors="replace")[-2000:]
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server process did not start within 90 s"
        time.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def server_processes(data_dir: Path, logs: Path, count: int, database_url: str | None = None) -> Iterator[list[str]]:
    """``count`` server processes on one hub, started together; yields their URLs once all are up."""
    started = [start_server(data_dir, logs / f"server-{i}.log", database_url) for i in range(count)]
    try:
        for i, (process, url) in enumerate(started):
            ready(process, url, logs / f"server-{i}.log")
        yield [url for _, url in started]
    finally:
        for process, _ in started:
            stop(process)


def victim(served: Served, index: int) -> dict[str, str]:
    """A person with no account whose NIR and name the attacker knows, and whose NIR no other test tried (the world's
    citizens are the first two people, the leak's the next LEAKED)."""
    return people(served.world.delivery)[2 + LEAKED + index]


def test_birth_date_guessing_is_stopped_across_a_restart(served: Served, leak: list[list[str]], tmp_path: Path) -> None:
    person = victim(served, 7)
    before = citizen_accounts(served.world.hub)
    dates = guesses(person["DATE_NAISSANCE"])
    # First server: the portal the suite serves. The right date (second guess) reads like the wrong ones.
    first = guess_birth_date([served.url], person["BEN_NIR"], person["NOM"], dates[: A_FEW + 2], rotate_sources=True)
    allowed = stopped_after_a_few(first)
    assert allowed >= 2  # the true date was answered, not refused: its answer is the one compared
    # A new server process on the same data dir (a restart): the NIR is still refused, from any address.
    with server_processes(served.world.hub.settings.data_dir, tmp_path, 1) as [url]:
        after = guess_birth_date([url], person["BEN_NIR"], person["NOM"], dates[A_FEW + 2 :], rotate_sources=True)
        assert set(after) == {429}, after
        # Sign-in guessing from one address, begun on the first server, stays slowed on the new process.
        source = new_source()
        # (An unknown username: throttled the same, and no account's failure count or alert disturbs other tests.)
        wrong = {"username": "an-unknown-analyst", "password": "not the password!", "totp": "000000"}
        with served.client(source) as c:
            free = served.world.hub.settings.login_free_failures
            failed = [c.post("/auth/login", json=wrong).status_code for _ in range(free)]
        assert set(failed) == {401}, failed
        with httpx.Client(base_url=url, transport=httpx.HTTPTransport(local_address=source), timeout=60) as c:
            assert c.post("/auth/login", json=wrong).status_code == 429
    assert citizen_accounts(served.world.hub) == before


@pytest.fixture(scope="module")
def two_processes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[list[str], Hub]]:
    """One PostgreSQL hub served by two server processes at the same time, with a staff account to guess at."""
    from hygie.governance.accounts import CONSOLE, Accounts
    from hygie.governance.acts import act
    from hygie.governance.policy import Role

    url = postgres.create_database(request.getfixturevalue("postgres_cluster"), "hygie_leak_replay")
    data_dir = tmp_path_factory.mktemp("two-processes") / "hub"
    hub = Hub.init(make_settings(data_dir, database_url=url))
    with act(hub, CONSOLE, "test.setup") as session:
        Accounts(session, hub.custody, hub.settings).create(CONSOLE, username="analyste", role=Role.RESEARCHER,
                                                           password=PASSWORD, organisation="Test")  # fmt: skip
    with server_processes(data_dir, data_dir.parent, 2, url) as urls:
        yield urls, hub
    hub.close()
    postgres.drop_database(url)


def test_birth_date_guessing_is_stopped_across_two_processes(
    served: Served, two_processes: tuple[list[str], Hub]
) -> None:
    urls, _ = two_processes
    person = victim(served, 9)
    statuses = guess_birth_date(urls, person["BEN_NIR"], person["NOM"], guesses(person["DATE_NAISSANCE"], 16),
                                rotate_sources=True)  # fmt: skip
    stopped_after_a_few(statuses)
    for url in urls:  # a refusal says how long to wait, and nothing about the person
        with httpx.Client(base_url=url, timeout=60, transport=httpx.HTTPTransport(local_address=new_source())) as c:
            refused = enrol(c, person["BEN_NIR"], person["NOM"], person["DATE_NAISSANCE"], username="guess-last")
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert person["NOM"] not in refused.text and person["BEN_NIR"] not in refused.text
    # A burst: sixteen guesses at once, from sixteen addresses, half on each process (the limit is one conditional
    # UPDATE in the database, so concurrent requests in two processes cannot both take the last try).
    burst = victim(served, 15)
    dates = guesses(burst["DATE_NAISSANCE"], 16)

    def one(i: int) -> int:
        return guess_birth_date([urls[i % 2]], burst["BEN_NIR"], burst["NOM"], [dates[i]], rotate_sources=True)[0]

    with ThreadPoolExecutor(8) as pool:
        answered = list(pool.map(one, range(16)))
    per_nir = two_processes[1].settings.citizen_letter_requests_per_nir
    assert per_nir <= A_FEW and answered.count(429) == 16 - per_nir, answered  # exactly the limit got through
    # From one address too, whichever process answers.
    other = victim(served, 11)
    stopped_after_a_few(guess_birth_date(urls, other["BEN_NIR"], other["NOM"], guesses(other["DATE_NAISSANCE"], 16),
                                         rotate_sources=False))  # fmt: skip


def test_sign_in_guessing_is_slowed_across_two_processes(two_processes: tuple[list[str], Hub]) -> None:
    urls, hub = two_processes
    free = hub.settings.login_free_failures
    source = new_source()
    statuses: list[int] = []
    wrong: dict[str, Any] = {"username": "analyste", "password": "a guessed password", "totp": "123456"}
    for i in range(free + 3):
        with httpx.Client(base_url=urls[i % 2], transport=httpx.HTTPTransport(local_address=source), timeout=60) as c:
            statuses.append(c.post("/auth/login", json=wrong).status_code)
    # Counted together: the pair's free failures across both processes, then the wait (never one set per process).
    assert statuses == [401] * free + [429] * 3, statuses


def test_the_anonymous_breach_check_is_limited_across_two_processes(
    served: Served, two_processes: tuple[list[str], Hub]
) -> None:
    """'Am I in it?' per address, whichever process answers; an evaluation is good for one lookup, on any process."""
    import base64

    from hygie.breach import oprf

    urls, hub = two_processes
    source = new_source()
    blinded = {"blinded": base64.b64encode(oprf.blind(victim(served, 13)["BEN_NIR"]).message).decode()}
    clients = [
        httpx.Client(base_url=url, timeout=60, transport=httpx.HTTPTransport(local_address=source)) for url in urls
    ]
    try:
        first = clients[0].post("/breach-check/evaluate", json=blinded)
        assert first.status_code == 200, first.text
        lookup = {"attempt": first.json()["attempt"], "prefix": 0}
        assert clients[1].post("/breach-check/lookup", json=lookup).status_code == 200  # redeemed on the other
        assert clients[0].post("/breach-check/lookup", json=lookup).status_code == 401  # once
        per_hour = hub.settings.breach_check_per_ip_per_hour
        statuses = [clients[i % 2].post("/breach-check/evaluate", json=blinded).status_code for i in range(per_hour)]
        assert statuses == [200] * (per_hour - 1) + [429], statuses  # the first evaluation counted too
    finally:
        for c in clients:
            c.close()
