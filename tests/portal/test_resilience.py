# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Resilience of the portal: admission control, breakers, readiness, draining, and never a default value for the truth.

Overload is made real: routes of a given class that hold their slot until the test releases them (a research
analysis that takes long, a slow citizen read) and bursts of concurrent requests through the whole ASGI stack.
Failures are real too: the database is a dead one (a SQLite file that cannot be opened, a PostgreSQL port with no
server), the warehouse loses a file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import create_engine, delete

from hygie.config import AdmissionLimits
from hygie.db import make_sessionmaker
from hygie.governance.citizen_index import CitizenUse, CitizenUseGeneration, CitizenUseRecent
from hygie.governance.models import ProjectView
from hygie.hub import Hub
from hygie.portal.app import create_app
from hygie.portal.resilience import Resilience
from hygie.portal.resilience.classes import Dependency, RouteClass, classify, dependencies
from tests.portal.world import World

FAST = AdmissionLimits(concurrency=2, queue=2, wait_seconds=0.5, deadline_seconds=5.0, retry_after_seconds=7)


@pytest.fixture(scope="module")
def used(shared_world: World) -> tuple[World, int, dict[str, Any]]:
    """The shared world with one active project whose view includes citizen1, and citizen1's correct answer."""
    pid = shared_world.active_project()
    answer = shared_world.call("citizen1", "GET", "/me/data-uses")
    assert answer.status_code == 200 and answer.json()["total"] == 1
    return shared_world, pid, answer.json()


class Holds:
    """Routes added to an app that hold their slot until released: slow work of a chosen class."""

    def __init__(self, app: FastAPI) -> None:
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)

        def hold() -> dict[str, str]:
            self.entered.release()
            if not self.release.wait(10):
                raise AssertionError("the test never released the held request")
            return {"status": "done"}

        # Prepended so they answer before any real route of the same shape.
        for path in ("/projects/999/analyses", "/me/slow"):
            app.add_api_route(path, hold, methods=["GET", "POST"])
            app.router.routes.insert(0, app.router.routes.pop())


def portal(hub: Hub, **settings: Any) -> tuple[FastAPI, Hub]:
    """An app over the same data as ``hub``, with its own settings (and its own hub object, free to break)."""
    own = dataclasses.replace(hub, settings=hub.settings.model_copy(update=settings))
    return create_app(own), own


def resilience(app: FastAPI) -> Resilience:
    state: Resilience = app.state.resilience
    return state


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://portal", timeout=30)


async def wait_for(condition: Any, seconds: float = 5.0) -> None:
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "condition not reached"
        await asyncio.sleep(0.01)


def scrape(app: FastAPI) -> str:
    """The metrics as Prometheus reads them from the separate listener (metrics_host:metrics_port)."""
    return resilience(app).metrics.exposition().decode()


def metric(exposition: str, series: str) -> float:
    for line in exposition.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{series} not in the metrics")


def kill_database(hub: Hub, tmp: Any) -> None:
    """Point ``hub`` at a database that is not there: a SQLite file in a missing directory, or a PostgreSQL port
    nobody listens on (same dialect, so the same code paths run)."""
    if hub.engine.dialect.name == "sqlite":
        url = f"sqlite:///{tmp}/missing/dir/hygie.db"
    else:
        url = hub.engine.url.set(query={"host": "127.0.0.1", "port": "9"}, host=None, port=None).render_as_string(
            hide_password=False
        )
    dead = create_engine(url, connect_args={"connect_timeout": 2} if "postgresql" in url else {})
    hub.engine, hub.sessions = dead, make_sessionmaker(dead)


def test_route_classes() -> None:
    assert classify("/me/data-uses") is RouteClass.CITIZEN
    assert classify("/registre") is RouteClass.CITIZEN
    assert classify("/citoyen/remboursements") is RouteClass.CITIZEN
    assert classify("/") is RouteClass.CITIZEN
    assert classify("/projects/3/dummy-data") is RouteClass.RESEARCH
    assert classify("/projects/3/analyses/12/download") is RouteClass.RESEARCH
    assert classify("/airlock") is RouteClass.GOVERNANCE
    assert classify("/projects/3/analyses") is RouteClass.RESEARCH
    assert classify("/projects/3/view") is RouteClass.RESEARCH
    assert classify("/jobs/7") is RouteClass.RESEARCH
    assert classify("/projects/3/decisions") is RouteClass.GOVERNANCE
    assert classify("/auth/login") is RouteClass.GOVERNANCE
    assert classify("/register") is RouteClass.PUBLIC
    assert classify("/audit/checkpoint") is RouteClass.PUBLIC
    assert classify("/readyz") is RouteClass.HEALTH
    assert dependencies("/me/opt-out", RouteClass.CITIZEN) == (Dependency.DATABASE, Dependency.CUSTODY)
    assert dependencies("/citoyen/remboursements", RouteClass.CITIZEN) == (
        Dependency.DATABASE,
        Dependency.WAREHOUSE,
        Dependency.CUSTODY,
    )
    assert dependencies("/healthz", RouteClass.HEALTH) == ()


def test_overload_is_answered_503_with_retry_after_and_nothing_else(used: tuple[World, int, dict[str, Any]]) -> None:
    world, _, correct = used
    app, _ = portal(world.hub, admission_citizen=FAST)
    holds = Holds(app)
    headers = world.headers("citizen1")

    async def run() -> None:
        async with client(app) as c:
            # Two held in progress, two queued: the six others are refused at once.
            burst = [asyncio.create_task(c.get("/me/slow", headers=headers)) for _ in range(10)]
            await wait_for(lambda: sum(t.done() for t in burst) == 6)
            refused = [t.result() for t in burst if t.done()]
            assert {r.status_code for r in refused} == {503}
            assert all(r.headers["retry-after"] == "7" for r in refused)
            body = refused[0].json()
            assert body["retry_after"] == 7 and "busy" in body["detail"] and "safe" in body["detail"]
            holds.release.set()
            assert [(await t).status_code for t in burst].count(200) == 4

            # The real endpoint under a burst: only 200 (with the complete, correct answer) or 503.
            holds.release.clear()
            answers = await asyncio.gather(*(c.get("/me/data-uses", headers=headers) for _ in range(40)))
            assert {r.status_code for r in answers} <= {200, 503}
            assert all(r.json() == correct for r in answers if r.status_code == 200)
            assert any(r.status_code == 200 for r in answers)

            # A queued request that waits past the queue deadline is refused, not kept waiting.
            held = [asyncio.create_task(c.get("/me/slow", headers=headers)) for _ in range(2)]
            await wait_for(lambda: resilience(app).admission.gates[RouteClass.CITIZEN].active == 2)
            started = time.monotonic()
            late = await c.get("/me/slow", headers=headers)
            assert late.status_code == 503 and 0.4 < time.monotonic() - started < 3
            holds.release.set()
            assert [(await t).status_code for t in held] == [200, 200]

        metrics = scrape(app)
        shed = sum(r.status_code == 503 for r in answers) + 6 + 1
        full = metric(metrics, 'hygie_load_shed_total{reason="queue full",route_class="citizen"}')
        # On a slow machine some of the burst may also wait past the queue deadline: the reasons add up.
        late_shed = metric(metrics, 'hygie_load_shed_total{reason="queue deadline",route_class="citizen"}')
        assert full >= 6 and late_shed >= 1 and full + late_shed == shed
        assert metric(metrics, 'hygie_http_requests_total{route_class="citizen",status="503"}') == shed

    asyncio.run(run())


def test_browsers_get_a_plain_french_page_saying_busy_safe_and_when(used: tuple[World, int, dict[str, Any]]) -> None:
    world, _, _ = used
    app, _ = portal(world.hub, admission_citizen=FAST.model_copy(update={"queue": 0}))
    holds = Holds(app)
    headers = {**world.headers("citizen1"), "Accept": "text/html,application/xhtml+xml;q=0.9"}

    async def run() -> tuple[httpx.Response, httpx.Response]:
        async with client(app) as c:
            held = [asyncio.create_task(c.get("/me/slow", headers=headers)) for _ in range(2)]
            await wait_for(lambda: resilience(app).admission.gates[RouteClass.CITIZEN].active == 2)
            page = await c.get("/me/data-uses", headers=headers)
            # Admission decides first, before the body limit and routing: shed, not 413 nor 405.
            big = b"x" * (world.hub.settings.request_body_max_kib * 2**10 + 1)
            oversized = await c.post("/me/data-uses", headers=headers, content=big)
            holds.release.set()
            await asyncio.gather(*held)
            return page, oversized

    page, oversized = asyncio.run(run())
    assert oversized.status_code == 503 and "votre demande n&#x27;a rien modifié" in oversized.text
    assert page.status_code == 503 and page.headers["retry-after"] == "7"
    assert page.headers["content-type"].startswith("text/html")
    text = page.text
    assert '<html lang="fr">' in text
    assert "Le service est très sollicité" in text
    assert "Vos données sont en sécurité" in text
    assert "Réessayez <strong>dans 7 secondes</strong>" in text


def test_citizens_are_served_while_research_is_saturated(used: tuple[World, int, dict[str, Any]]) -> None:
    world, _, correct = used
    research = AdmissionLimits(concurrency=1, queue=1, wait_seconds=5, deadline_seconds=10, retry_after_seconds=30)
    # Queued citizens wait long enough for a slot even on a loaded machine: what is tested is that research
    # saturation takes nothing from them, not how fast a read is.
    citizens = FAST.model_copy(update={"queue": 4, "wait_seconds": 10.0})
    app, _ = portal(world.hub, admission_research=research, admission_citizen=citizens)
    holds = Holds(app)
    citizen, researcher = world.headers("citizen1"), world.headers("researcher1")
    gates = resilience(app).admission.gates

    async def run() -> None:
        async with client(app) as c:
            # Research: one analysis running, one waiting; a third is refused at once.
            analyses = [asyncio.create_task(c.post("/projects/999/analyses", headers=researcher)) for _ in range(2)]
            await wait_for(lambda: gates[RouteClass.RESEARCH].active == 1 and gates[RouteClass.RESEARCH].queued == 1)
            refused = await c.post("/projects/999/analyses", headers=researcher)
            assert refused.status_code == 503 and refused.headers["retry-after"] == "30"

            # Citizens' reads have capacity of their own: answered, completely, while research is saturated.
            reads = await asyncio.gather(*(c.get("/me/data-uses", headers=citizen) for _ in range(6)))
            assert [r.status_code for r in reads] == [200] * 6
            assert all(r.json() == correct for r in reads)

            # While citizens wait in queue, research is shed first (no queueing behind them).
            slow = [asyncio.create_task(c.get("/me/slow", headers=citizen)) for _ in range(3)]
            await wait_for(lambda: gates[RouteClass.CITIZEN].queued == 1)
            gates[RouteClass.RESEARCH].limits = research.model_copy(update={"queue": 5})
            shed = await c.post("/projects/999/analyses", headers=researcher)
            assert shed.status_code == 503
            holds.release.set()
            assert {(await t).status_code for t in [*analyses, *slow]} == {200}

        metrics = scrape(app)
        assert metric(metrics, 'hygie_load_shed_total{reason="citizens first",route_class="research"}') == 1

    asyncio.run(run())


CITIZEN_READS = ["/me/data-uses", "/me/opt-out", "/me", "/register", "/registre"]


@pytest.fixture
def dead(used: tuple[World, int, dict[str, Any]], tmp_path: Any) -> Iterator[tuple[World, FastAPI, Hub]]:
    """An app whose database has gone away (the shared world's own hub is untouched)."""
    world, _, _ = used
    world.headers("citizen1")  # signed in while the database was up
    app, hub = portal(world.hub, breaker_failures=3, breaker_open_seconds=0.5, dependency_probe_seconds=3.0)
    kill_database(hub, tmp_path)
    yield world, app, hub
    hub.engine.dispose()


def test_a_dead_database_gives_explicit_503s_never_an_empty_answer(dead: tuple[World, FastAPI, Hub]) -> None:
    world, app, _ = dead

    async def run() -> list[httpx.Response]:
        async with client(app) as c:
            return [await c.get(path, headers=world.headers("citizen1")) for path in CITIZEN_READS]

    for path, r in zip(CITIZEN_READS, asyncio.run(run()), strict=True):
        assert r.status_code == 503, (path, r.status_code, r.text)
        assert r.headers["retry-after"]
        if path == "/registre":
            continue  # a page: JSON only for API clients that do not ask for HTML
        body = r.json()
        assert set(body) == {"detail", "retry_after"}, path
        assert "unavailable" in body["detail"] and "database" in body["detail"], body


def test_the_breaker_opens_after_failures_answers_at_once_and_recovers(
    dead: tuple[World, FastAPI, Hub], used: tuple[World, int, dict[str, Any]]
) -> None:
    world, app, hub = dead
    _, _, correct = used
    breaker = resilience(app).breakers[Dependency.DATABASE]
    headers = world.headers("citizen1")

    async def run() -> None:
        async with client(app) as c:
            for _ in range(3):  # each one tries the dead database
                assert (await c.get("/me/data-uses", headers=headers)).status_code == 503
            assert breaker.state == "open"
            started = time.monotonic()
            r = await c.get("/me/data-uses", headers=headers)
            assert r.status_code == 503 and "database" in r.json()["detail"]
            assert time.monotonic() - started < 0.2  # refused at the door: nothing piles up on the dead database
            metrics = scrape(app)  # what the metrics listener serves (it needs no database)
            assert metric(metrics, 'hygie_breaker_state{dependency="database"}') == 2

            # Half-open after the pause: the probe fails while the database is still down, and it stays open.
            await asyncio.sleep(0.6)
            assert (await c.get("/me/data-uses", headers=headers)).status_code == 503
            assert breaker.state == "open" and breaker.opened == 2

            # The database is back: after the pause the probe passes, the breaker closes, answers are complete.
            hub.engine.dispose()
            hub.engine, hub.sessions = world.hub.engine, world.hub.sessions
            await asyncio.sleep(0.6)
            r = await c.get("/me/data-uses", headers=headers)
            assert r.status_code == 200 and r.json() == correct
            assert breaker.state == "closed"

    asyncio.run(run())


def test_readyz_reflects_a_dead_database_while_healthz_stays_up(
    used: tuple[World, int, dict[str, Any]], tmp_path: Any
) -> None:
    world, _, _ = used
    app, hub = portal(world.hub, dependency_probe_seconds=3.0)

    async def run() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        async with client(app) as c:
            # Polled, as an orchestrator does: on a loaded machine one probe may miss its time limit and honestly
            # answer "not ready" before the database is killed.
            for _ in range(10):
                ready = await c.get("/readyz")
                if ready.status_code == 200:
                    break
            kill_database(hub, tmp_path)
            return ready, await c.get("/readyz"), await c.get("/healthz")

    ready, not_ready, alive = asyncio.run(run())
    assert ready.status_code == 200 and ready.json() == {
        "status": "ready",
        "checks": {"database": "ok", "keystore": "ok"},
        "breakers": {"database": "closed", "warehouse": "closed", "custody": "closed"},
        "draining": False,
    }
    assert not_ready.status_code == 503 and not_ready.json()["status"] == "not ready"
    assert not_ready.json()["checks"]["database"] != "ok" and not_ready.json()["checks"]["keystore"] == "ok"
    assert alive.status_code == 200
    hub.engine.dispose()


def test_a_lost_warehouse_file_is_unavailable_not_an_empty_list(used: tuple[World, int, dict[str, Any]]) -> None:
    world, pid, correct = used
    app, _ = portal(world.hub)
    with world.hub.session() as session:
        membership = (
            world.hub.settings.data_dir / session.query(ProjectView).filter_by(project_id=pid).one().membership_file
        )
        # Without its index rows, the generation is answered from its membership file (hubs indexed before the
        # citizen index, or an index being rebuilt): that file going missing must not mean "nobody".
        for model in (CitizenUse, CitizenUseRecent, CitizenUseGeneration):
            session.execute(delete(model))
        session.commit()
    hidden = membership.with_name(membership.name + ".away")
    os.rename(membership, hidden)
    try:
        r = asyncio.run(_get(app, "/me/data-uses", world.headers("citizen1")))
    finally:
        os.rename(hidden, membership)
    assert r.status_code == 503 and "warehouse" in r.json()["detail"], r.text
    assert asyncio.run(_get(app, "/me/data-uses", world.headers("citizen1"))).json() == correct


async def _get(app: FastAPI, path: str, headers: dict[str, str]) -> httpx.Response:
    async with client(app) as c:
        return await c.get(path, headers=headers)


def test_draining_finishes_requests_in_flight_and_refuses_new_ones(used: tuple[World, int, dict[str, Any]]) -> None:
    world, _, _ = used
    app, _ = portal(world.hub)
    holds = Holds(app)
    drain = resilience(app).drain
    headers = world.headers("citizen1")

    async def run() -> None:
        async with client(app) as c:
            in_flight = asyncio.create_task(c.get("/me/slow", headers=headers))
            await wait_for(lambda: drain.in_flight == 1)
            drain.start()
            new = await c.get("/me/data-uses", headers=headers)
            assert new.status_code == 503 and new.headers["retry-after"] and "restarting" in new.json()["detail"]
            ready = await c.get("/readyz")
            assert ready.status_code == 503 and ready.json()["draining"] is True
            assert (await c.get("/healthz")).status_code == 200  # alive, only not taking work
            assert not await drain.idle(0.2)
            holds.release.set()
            assert (await in_flight).status_code == 200
            assert await drain.idle(2)

    asyncio.run(run())


def test_sigterm_drains_before_the_server_handler_runs(used: tuple[World, int, dict[str, Any]]) -> None:
    """The real signal path, on the main thread: SIGTERM starts draining; the server's own handler (standing in for
    uvicorn's, which stops accepting connections) runs only once the request in flight has finished."""
    world, _, _ = used
    app, _ = portal(world.hub)
    holds = Holds(app)
    drain = resilience(app).drain
    stopped: list[float] = []
    previous = signal.signal(signal.SIGTERM, lambda *_: stopped.append(time.monotonic()))

    async def run() -> None:
        drain.hook_signals(asyncio.get_running_loop())
        async with client(app) as c:
            in_flight = asyncio.create_task(c.get("/me/slow", headers=world.headers("citizen1")))
            await wait_for(lambda: drain.in_flight == 1)
            os.kill(os.getpid(), signal.SIGTERM)
            await wait_for(lambda: drain.draining)
            await asyncio.sleep(0.2)
            assert not stopped  # still draining
            holds.release.set()
            finished = time.monotonic()
            assert (await in_flight).status_code == 200
            await wait_for(lambda: bool(stopped))
            assert stopped[0] >= finished
        drain.unhook_signals()

    try:
        asyncio.run(run())
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_service_endpoints_say_why_they_are_not_recorded(used: tuple[World, int, dict[str, Any]]) -> None:
    world, _, _ = used
    paths = world.client.get("/openapi.json").json()["paths"]
    for path in ("/readyz", "/metrics"):
        assert re.match(r"not recorded: ", paths[path]["get"]["x-hygie-audit"])


def test_metrics_are_not_public_on_the_api_port(used: tuple[World, int, dict[str, Any]]) -> None:
    world, _, _ = used
    assert world.client.get("/metrics").status_code == 401
    for who in ("researcher1", "dpo", "citizen1"):
        assert world.call(who, "GET", "/metrics").status_code == 403, who
    for who in ("operator", "auditor"):
        r = world.call(who, "GET", "/metrics")
        assert r.status_code == 200 and "hygie_http_requests_total" in r.text, who
    # The separate listener, loopback only, answers without credentials (what Prometheus scrapes).
    from hygie.portal.app import _start_metrics_listener

    app = world.client.app
    own = dataclasses.replace(world.hub, settings=world.hub.settings.model_copy(update={"metrics_port": 0}))
    server = _start_metrics_listener(app, own)  # type: ignore[arg-type]
    assert server is not None and server.server_address[0] == "127.0.0.1"
    try:
        r = httpx.get(f"http://127.0.0.1:{server.server_port}/metrics", timeout=10)
        assert r.status_code == 200 and "hygie_breaker_state" in r.text
    finally:
        server.shutdown()
        server.server_close()
    assert _start_metrics_listener(app, world.hub) is None  # none unless metrics_port is set  # type: ignore[arg-type]
    # Probes stay public and say nothing about data.
    assert world.client.get("/healthz").json() == {"status": "ok"}
    assert set(world.client.get("/readyz").json()) == {"status", "checks", "breakers", "draining"}
