# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Bad input on every route that takes a body: malformed JSON, wrong types, unknown fields, oversized bodies.

What must happen, on every POST, PUT and PATCH route of the schema: a clear 4xx with a JSON ``detail`` (never a
5xx), the same status for the same fault everywhere, no submitted value echoed back, and the refusal recorded.
Path ids are ids nobody has, so nothing is changed even where a fault slips through (then the test fails on the
status, which is not the refusal's).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.security.conftest import MISSING, Served, new_source
from tests.security.policy import MULTIPART, POLICY, request_body
from tests.security.test_authorization_matrix import Operation, operations

CANARY = "zz-canary-7f3a91"
"""Put in every bad value: an answer holding it echoed what was submitted."""


@pytest.fixture(scope="module")
def body_routes(matrix_served: Served) -> list[Operation]:
    schema = matrix_served.call(None, "GET", "/openapi.json").json()
    return [op for op in operations(schema) if op.has_body and op.key not in MULTIPART and op.key in POLICY]


def caller_of(op: Operation) -> str | None:
    """Someone past authentication (a refusal must be about the input, not about who asks)."""
    return None if POLICY[op.key].public else "researcher1"


def valid_body(s: Served, op: Operation) -> dict[str, Any]:
    body: dict[str, Any] = request_body(op.method, op.path, "researcher1", s.ids, MISSING)["json"]
    return dict(body)


def send(s: Served, op: Operation, source: str, **kwargs: Any) -> httpx.Response:
    url = op.path.format(**{p: MISSING for p in op.params})
    return s.call(caller_of(op), op.method, url, source=source, **kwargs)


def wrong_types(body: dict[str, Any]) -> dict[str, Any]:
    """Every field of a valid body with a value of another type, carrying the canary."""
    return {k: ([CANARY] if v is None or isinstance(v, str) else CANARY) for k, v in body.items()} or {"x": CANARY}


FAULTS: dict[str, Callable[[Served, Operation], dict[str, Any]]] = {
    "malformed JSON": lambda s, op: {"content": b'{"a": "' + CANARY.encode() + b'", ',
                                     "headers": {"Content-Type": "application/json"}},
    "not an object": lambda s, op: {"json": [CANARY]},
    "wrong types": lambda s, op: {"json": wrong_types(valid_body(s, op))},
    "unknown field": lambda s, op: {"json": {**valid_body(s, op), "unexpected_field": CANARY}},
    "oversized": lambda s, op: {"json": {**valid_body(s, op), "padding": CANARY * (1100 * 1024 // len(CANARY))}},
}  # fmt: skip


@pytest.mark.parametrize("fault", FAULTS)
def test_bad_input_gets_a_clear_uniform_refusal(
    matrix_served: Served, body_routes: list[Operation], fault: str
) -> None:
    s = matrix_served
    source = new_source()
    answers, wrong = {}, []
    for op in body_routes:
        r = send(s, op, source, **FAULTS[fault](s, op))
        answers[str(op)] = r.status_code
        json_body = r.headers.get("content-type", "").startswith("application/json")
        if not 400 <= r.status_code < 500 or r.status_code in (401, 403, 404, 409):
            wrong.append(f"{op}: {r.status_code}, not a refusal of the input: {r.text[:200]}")
        elif CANARY in r.text:
            wrong.append(f"{op}: echoes the submitted value: {r.text[:200]}")
        elif not (json_body and r.json().get("detail")):
            wrong.append(f"{op}: no detail saying what was wrong: {r.text[:200]}")
    assert not wrong, f"{fault}:\n" + "\n".join(wrong)
    assert len(set(answers.values())) == 1, (fault, answers)


def refusals_recorded(s: Served) -> list[dict[str, Any]]:
    """The refusals of input on the record, as the auditor finds them (H5's action name, ``request.refused``; a
    service's own Invalid is recorded under its act with ``invalid request``)."""
    events = s.events(action="request.refused") + s.events(outcome="failed")
    return [e for e in events if e["action"] == "request.refused" or "invalid" in json.dumps(e.get("detail"))]


@pytest.mark.parametrize("fault", ["malformed JSON", "wrong types", "unknown field", "oversized"])
def test_bad_input_is_recorded(matrix_served: Served, body_routes: list[Operation], fault: str) -> None:
    s = matrix_served
    op = next(o for o in body_routes if o.key == ("POST", "/projects"))
    before = {e["id"] for e in refusals_recorded(s)}
    r = send(s, op, new_source(), **FAULTS[fault](s, op))
    assert 400 <= r.status_code < 500, r.text[:300]
    new = [e for e in refusals_recorded(s) if e["id"] not in before]
    assert new, f"{fault}: the refusal is not on the record"
    assert CANARY not in json.dumps(new), "the record holds the submitted value"
