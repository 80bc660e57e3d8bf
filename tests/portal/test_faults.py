# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Faults of a dependency are the portal's honest 503, never a 500 and never a wrong answer.

The faults are made at the file level, as a failing disk would: the SQLite metadata database's file is overwritten
with garbage or truncated while requests run concurrently, then restored; the keystore file is made unreadable.
The classifier (hygie/portal/resilience/faults.py) is checked over exceptions raised by a real corrupt SQLite file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from fastapi import FastAPI
from sqlalchemy import create_engine, text
from sqlalchemy import exc as sa

from hygie.hub import Hub
from hygie.portal.app import create_app
from hygie.portal.resilience import Resilience
from hygie.portal.resilience.classes import Dependency
from hygie.portal.resilience.faults import dependency_of
from tests.portal.world import Template, World, build_world

READS = ["/me", "/me/opt-out", "/me/data-uses", "/register"]
ROUNDS = 6
"""Rounds of concurrent requests (every read, twice) while the fault lasts: a count, not a duration."""


@pytest.fixture
def world(sqlite_template: Template, tmp_path: Path) -> Iterator[World]:
    """A SQLite hub of this test's own: its files are broken on purpose."""
    yield from build_world(tmp_path, sqlite_template, None)


def portal(hub: Hub) -> FastAPI:
    # A breaker that opens after 3 failures and probes at once (no pause): the test needs no sleep.
    settings = hub.settings.model_copy(
        update={"breaker_failures": 3, "breaker_open_seconds": 0.0, "dependency_probe_seconds": 5.0}
    )
    return create_app(dataclasses.replace(hub, settings=settings))


def database_file(hub: Hub) -> Path:
    database = hub.engine.url.database
    assert hub.engine.dialect.name == "sqlite" and database
    return Path(database)


def checkpoint(hub: Hub) -> None:
    """Everything committed into the main file (the WAL emptied), so that its bytes are the whole database."""
    with hub.engine.connect() as connection:
        connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))


async def burst(c: httpx.AsyncClient, headers: dict[str, str]) -> list[tuple[str, httpx.Response]]:
    """Every read twice, all at once (sync routes run on worker threads: concurrent uses of the database)."""
    paths = READS * 2
    answers = await asyncio.gather(*(c.get(path, headers=headers) for path in paths))
    return list(zip(paths, answers, strict=True))


def body(answer: httpx.Response) -> Any:
    return answer.json()


def check_fault_answer(path: str, answer: httpx.Response, correct: dict[str, Any]) -> str:
    """A 503 with Retry-After and the "unavailable, data safe" body, or a 200 with exactly the correct body."""
    assert answer.status_code in (200, 503), (path, answer.status_code, answer.text[:300])
    if answer.status_code == 200:
        assert body(answer) == correct[path], path
        return "ok"
    assert int(answer.headers["retry-after"]) > 0
    detail = body(answer)
    assert set(detail) == {"detail", "retry_after"}, detail
    assert "unavailable" in detail["detail"] and "your data is safe" in detail["detail"], detail
    return "unavailable"


def break_file(path: Path, original: bytes, fault: str) -> None:
    """Break the database file in place (open connections read the broken file too), as a failing disk would."""
    page = int.from_bytes(original[16:18], "big") or 65536  # the page size, from the file's header
    with path.open("r+b") as f:
        if fault == "not-a-database":  # every byte garbage: "file is not a database"
            f.write(os.urandom(len(original)))
        elif fault == "malformed":  # the schema page intact, every other page garbage: "disk image is malformed"
            f.seek(page)
            f.write(os.urandom(len(original) - page))
        else:  # emptied
            f.truncate(0)


@pytest.mark.parametrize("fault", ["not-a-database", "malformed", "truncated"])
def test_a_failing_database_file_gives_503s_never_a_500_nor_a_wrong_answer(world: World, fault: str) -> None:
    headers = world.headers("citizen1")
    app = portal(world.hub)
    resilience: Resilience = app.state.resilience
    path = database_file(world.hub)

    async def run() -> list[str]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://portal") as c:
            before = await burst(c, headers)
            assert all(a.status_code == 200 for _, a in before), [(p, a.status_code) for p, a in before]
            correct = {p: body(a) for p, a in before}

            checkpoint(world.hub)
            original = path.read_bytes()
            break_file(path, original, fault)
            world.hub.engine.dispose()  # and connections opened from now on (their page cache is gone)
            outcomes: list[str] = []
            try:
                for _ in range(ROUNDS):
                    outcomes += [check_fault_answer(p, a, correct) for p, a in await burst(c, headers)]
                # A browser gets the French page of the same 503.
                page = await c.get("/registre", headers={**headers, "Accept": "text/html"})
                assert page.status_code == 503 and int(page.headers["retry-after"]) > 0
                assert "momentanément indisponible" in page.text and "Vos données sont en sécurité" in page.text
            finally:
                with path.open("r+b") as f:
                    f.write(original)
                    f.truncate(len(original))
                world.hub.engine.dispose()
            assert "unavailable" in outcomes
            assert resilience.breakers[Dependency.DATABASE].opened >= 1

            # Restored: the next request probes the database and closes the breaker (requests arriving during the
            # probe are refused, by design); then every answer is correct again.
            first = await c.get("/me", headers=headers)
            assert first.status_code == 200 and body(first) == correct["/me"]
            assert resilience.breakers[Dependency.DATABASE].state == "closed"
            after = await burst(c, headers)
            assert [(p, a.status_code) for p, a in after] == [(p, 200) for p, _ in after]
            assert {p: body(a) for p, a in after} == correct
            assert resilience.breakers[Dependency.DATABASE].state == "closed"
            return outcomes

    asyncio.run(run())


def test_an_unreadable_keystore_gives_503s_and_recovers(world: World) -> None:
    headers = world.headers("citizen1")
    app = portal(world.hub)
    resilience: Resilience = app.state.resilience
    keystore = world.hub.settings.data_dir / "keys" / "keystore.json"
    reads = ["/me/reimbursements", "/me", "/me/data-uses"]

    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://portal") as c:
            correct = {}
            for path in reads:
                answer = await c.get(path, headers=headers)
                assert answer.status_code == 200, (path, answer.text)
                correct[path] = body(answer)
            original = keystore.read_bytes()
            keystore.write_bytes(b'{"format": ' + os.urandom(64))  # torn: not JSON any more
            try:
                answers = await asyncio.gather(*(c.get(p, headers=headers) for p in reads * 2))
                for path, answer in zip(reads * 2, answers, strict=True):
                    assert check_fault_answer(path, answer, correct) == "unavailable"
                    assert "(custody)" in body(answer)["detail"]
            finally:
                keystore.write_bytes(original)
            assert resilience.breakers[Dependency.CUSTODY].opened == 1
            for path in reads:  # the first one probes the keystore and closes the breaker
                answer = await c.get(path, headers=headers)
                assert answer.status_code == 200 and body(answer) == correct[path], path
            assert resilience.breakers[Dependency.CUSTODY].state == "closed"

    asyncio.run(run())


# -- the classifier, over exceptions raised by real broken files -------------------------------------------------


def raised(call: Any) -> BaseException:
    try:
        call()
    except Exception as error:
        return error
    raise AssertionError("no error raised")


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    path = tmp_path / "meta.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
        connection.executemany("INSERT INTO t (v) VALUES (?)", [(os.urandom(500),) for _ in range(200)])
    connection.close()
    return path


def test_database_faults_from_a_real_broken_file_are_the_database(sqlite_file: Path, tmp_path: Path) -> None:
    original = sqlite_file.read_bytes()
    engine = create_engine(f"sqlite:///{sqlite_file}")

    def read_raw() -> None:
        with sqlite3.connect(sqlite_file) as connection:
            connection.execute("SELECT sum(length(v)) FROM t").fetchall()

    def read() -> None:
        engine.dispose()
        with engine.connect() as connection:
            connection.execute(text("SELECT sum(length(v)) FROM t")).all()

    break_file(sqlite_file, original, "malformed")
    malformed = raised(read)
    assert type(malformed) is sa.DatabaseError and "malformed" in str(malformed)  # the error once answered 500
    assert dependency_of(malformed) is Dependency.DATABASE
    assert dependency_of(raised(read_raw)) is Dependency.DATABASE

    break_file(sqlite_file, original, "not-a-database")
    assert dependency_of(raised(read)) is Dependency.DATABASE
    assert dependency_of(raised(read_raw)) is Dependency.DATABASE

    # Code raised while handling the fault (a rollback, a clean-up) is still the database's fault.
    def handled() -> None:
        try:
            read()
        except sa.DatabaseError:
            raise ValueError("clean-up failed") from None

    assert dependency_of(raised(handled)) is Dependency.DATABASE

    sqlite_file.unlink()
    sqlite_file.mkdir()  # a directory where the file was: it cannot be opened
    assert dependency_of(raised(read)) is Dependency.DATABASE


def test_the_request_s_or_the_code_s_errors_are_not_dependency_faults(sqlite_file: Path) -> None:
    engine = create_engine(f"sqlite:///{sqlite_file}")

    def duplicate() -> None:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO t (id, v) VALUES (1, x'00')"))

    def wrong_bindings() -> None:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT * FROM t WHERE id = ?", (1, 2))

    integrity = raised(duplicate)
    assert isinstance(integrity, sa.IntegrityError) and dependency_of(integrity) is None
    programming = raised(wrong_bindings)
    assert isinstance(programming, sa.ProgrammingError) and dependency_of(programming) is None
    assert dependency_of(raised(lambda: int("not a number"))) is None
    assert dependency_of(raised(lambda: {}["missing"])) is None
    bad_cast = raised(lambda: pa.array(["x"]).cast(pa.int64()))
    assert isinstance(bad_cast, pa.ArrowInvalid) and dependency_of(bad_cast) is None
    bad_query = raised(lambda: duckdb.connect().execute("SELECT * FROM no_such_table"))
    assert dependency_of(bad_query) is None


@pytest.mark.parametrize("fault", ["garbage", "truncated", "emptied", "missing"])
def test_a_parquet_file_that_does_not_read_is_the_warehouse(tmp_path: Path, fault: str) -> None:
    path = tmp_path / "part-0.parquet"
    pq.write_table(pa.table({"n": list(range(5000)), "s": [str(i) for i in range(5000)]}), path)
    original = path.read_bytes()
    if fault == "garbage":
        path.write_bytes(os.urandom(len(original)))
    elif fault == "truncated":
        path.write_bytes(original[: len(original) // 2])
    elif fault == "emptied":
        path.write_bytes(b"")
    else:
        path.unlink()

    def arrow() -> None:
        ds.dataset([str(path)], format="parquet").to_table()

    def engine() -> None:
        connection = duckdb.connect()
        connection.execute(f"SELECT count(*) FROM read_parquet('{path}')").fetchall()

    for read in (arrow, engine):
        error = raised(read)
        assert dependency_of(error) is Dependency.WAREHOUSE, (read.__name__, type(error), str(error)[:200])
