# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Schemathesis against the portal's own /openapi.json: generated requests, as a signed-in DPO (and as a
researcher member of an active project for project data routes), never get a 5xx nor a response that violates
the schema.

Every operation is exercised with a few generated cases (kept small: the suite has a time budget); the checks are
schemathesis's: no server error, status code documented, body conforming to the schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

from tests.portal.world import World, build_world, make_template

EXAMPLES_PER_OPERATION = 4


@pytest.fixture(scope="module")
def fuzz_world(tmp_path_factory: pytest.TempPathFactory, small_delivery: Path) -> Iterator[World]:
    template = make_template(tmp_path_factory.mktemp("fuzz-tpl"), small_delivery, None)
    yield from build_world(tmp_path_factory.mktemp("fuzz"), template, None)


def operations(world: World) -> list[Any]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", world.client.app)
    found = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in ("/auth/logout",):
            continue  # would close the session the other cases use; covered by the auth tests
        found.append(operation)
    return found


def test_no_server_error_and_every_response_conforms(fuzz_world: World) -> None:
    fuzz_world.active_project()
    ops = operations(fuzz_world)
    assert len(ops) >= 40
    checks = [not_a_server_error, status_code_conformance, response_schema_conformance]
    for operation in ops:
        who = "researcher1" if "/analyses" in operation.path or "/view" in operation.path else "dpo"
        exercise(fuzz_world, operation, who, checks)


def exercise(world: World, operation: Any, who: str, checks: list[Any]) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck),
              derandomize=True, database=None)  # fmt: skip
    def run(case: schemathesis.Case) -> None:
        response = case.call(headers=world.headers(who))
        case.validate_response(response, checks=checks)

    run()


def test_the_strategy_reaches_every_operation(fuzz_world: World) -> None:
    assert st is not None
    paths = {op.path for op in operations(fuzz_world)}
    assert {"/projects", "/me/data-uses", "/audit/checkpoint", "/register"} <= paths
