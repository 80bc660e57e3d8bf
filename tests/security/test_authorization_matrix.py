# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The authorisation matrix, black-box and generated: every operation of the served hub's /openapi.json × every role
(and anonymous) × their own objects, foreign objects and missing ids, held to the reviewed policy of
tests/security/policy.py.

- a route without a policy entry fails (no unreviewed route);
- anonymous gets 401 on every route that is not public;
- nobody gets a 2xx beyond what their role and ownership allow, and nobody gets one on a missing object;
- a foreign object and a missing one get the same status and the same body (ids aside): a non-member cannot tell
  which projects, outputs or incidents exist;
- the operator never gets a 2xx on a route that reaches data or the audit record's details;
- no call fails with a 5xx.

The in-process matrix (tests/portal/test_authorization_matrix.py) checks the hand-picked cases and that allowed
calls pass and are recorded; this one checks that every route of the schema, including those added later, is
covered. Every call is made once (the ``outcomes`` fixture) and the tests below read the answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.portal.world import people
from tests.security.conftest import MISSING, ROLES, Served, new_source
from tests.security.policy import KNOWS, NOBODY, POLICY, QUERY, RESEARCHERS, Rule, request_body

CALLERS: list[str | None] = [r for r in ROLES if r not in ("reviewer2", "citizen2")] + [None]
"""One account of every role (two researchers: ownership), and anonymous (None)."""
KINDS = ("own", "foreign", "missing")


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    params: tuple[str, ...]
    has_body: bool
    query: tuple[str, ...] = ()
    """Required query parameters."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class Outcome:
    op: Operation
    caller: str | None
    kind: str
    url: str
    status: int
    body: str
    expected: str
    """'public', 'unauthenticated', 'allowed', 'denied' or 'maybe'."""

    def __str__(self) -> str:
        return (
            f"{self.caller or 'anonymous'} {self.op.method} {self.url} ({self.kind}) -> {self.status} {self.body[:160]}"
        )


@dataclass
class Objects:
    """The objects of the matrix hub, made through the API as their users make them."""

    project: dict[str, int]
    job: dict[str, int]
    release: dict[str, int]
    token: dict[str, int]
    incident: int | None
    alert: int | None
    reveal: int | None


def _other(researcher: str) -> str:
    return "researcher2" if researcher == "researcher1" else "researcher1"


def object_value(s: Served, o: Objects, param: str, caller: str, kind: str) -> int | None:
    """The id to put in ``param`` for ``caller``'s ``kind`` of object; None when the caller has no such object."""
    if kind == "missing":
        return MISSING
    researcher = caller in RESEARCHERS
    theirs = caller if kind == "own" else (_other(caller) if researcher else "researcher1")
    if param in ("project_id", "job_id", "release_id", "body_object"):
        if kind == "own" and not researcher:
            return None
        table = {"project_id": o.project, "body_object": o.project, "job_id": o.job, "release_id": o.release}[param]
        return table[theirs]
    if param == "token_id":
        return o.token.get(caller) if kind == "own" else o.token[_other(caller) if researcher else "researcher1"]
    if param == "account_id":
        if kind == "own":
            return s.ids[caller]
        return s.ids["researcher1" if caller == "researcher2" else "researcher2"]
    if param in ("incident_id", "row"):
        if kind == "own" or o.incident is None:
            return None
        return o.incident if param == "incident_id" else 1
    if param == "alert_id":
        return None if kind == "own" else o.alert
    if param == "reveal_id":
        return None if kind == "own" else o.reveal
    if param in ("lead_id", "lift_id", "sample_id", "claim_key"):
        # No control objects in this world (its projects are research ones): a foreign project's id with an id
        # nobody has; tests/control/test_api.py attacks the real ones.
        return None if kind == "own" else MISSING
    raise AssertionError(f"no object for path parameter {param!r}: add one to object_value")


def operations(schema: dict[str, Any]) -> list[Operation]:
    out = []
    for path, item in schema["paths"].items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            params = tuple(p["name"] for p in op.get("parameters", []) if p.get("in") == "path")
            query = tuple(p["name"] for p in op.get("parameters", []) if p.get("in") == "query" and p.get("required"))
            out.append(Operation(method.upper(), path, params, "requestBody" in op, query))
    return out


def expectation(rule: Rule, caller: str | None, kind: str) -> str:
    if rule.public:
        return "public"
    if caller is None:
        return "unauthenticated"
    if caller in rule.maybe:
        return "maybe"
    if kind in ("none", "own") and caller in rule.own:
        return "allowed"
    if kind == "foreign" and caller in rule.foreign:
        return "allowed"
    return "denied"


def _setup(s: Served) -> Objects:
    project = {"researcher1": s.active("researcher1"), "researcher2": s.active("researcher2")}
    job = {r: int(s.aggregate(r, project[r], {"group_by": ["sex"]})["id"]) for r in RESEARCHERS}
    release = {}
    for researcher in RESEARCHERS:
        done = s.sql(researcher, project[researcher], "SELECT count(*) AS n FROM ER_PRS_F")
        assert done["status"] == "withheld", done  # awaiting checkers, who find its release id in the airlock
        release[researcher] = next(
            int(i["release_id"]) for i in s.call("reviewer1", "GET", "/airlock").json() if i["job_id"] == done["id"]
        )
    token = {}
    for caller in ROLES:
        scopes = {"auditor": ["audit"], "citizen1": ["citizen"], "citizen2": ["citizen"]}.get(caller, ["governance"])
        r = s.call(caller, "POST", "/me/tokens", json={"name": "own", "scopes": scopes, "days": 1})
        if r.status_code == 200:
            token[caller] = int(r.json()["id"])
    assert {"researcher1", "researcher2"} <= token.keys(), token
    everyone = people(s.world.delivery)
    leak = f"NIR,NOM,PRENOM\n{everyone[0]['BEN_NIR']},Inventé-Dupontel,Personne\n".encode()  # a row in review
    r = s.call("dpo", "POST", "/breach/incidents", files={"file": ("l.csv", leak)}, data={"incident": "matrix leak"})
    assert r.status_code < 300, r.text
    incident = int(s.call("dpo", "GET", "/breach/incidents").json()[-1]["id"])
    s.call("auditor", "POST", f"/breach/incidents/{incident}/confirm")  # a second person (where the API asks one)
    reveal = s.call("dpo", "POST", f"/breach/incidents/{incident}/review/1/reveal",
                    json={"reason": "the law needs this identity to notify the person by post"})  # fmt: skip
    alert = s.open_alert()
    return Objects(
        project=project,
        job=job,
        release=release,
        token=token,
        incident=incident,
        alert=int(alert["id"]) if alert else None,
        reveal=int(reveal.json()["id"]) if reveal.status_code == 200 else None,
    )


@pytest.fixture(scope="module")
def schema(matrix_served: Served) -> dict[str, Any]:
    r = matrix_served.call(None, "GET", "/openapi.json")
    assert r.status_code == 200, r.text
    document: dict[str, Any] = r.json()
    return document


@pytest.fixture(scope="module")
def objects(matrix_served: Served) -> Objects:
    return _setup(matrix_served)


@pytest.fixture(scope="module")
def outcomes(matrix_served: Served, schema: dict[str, Any], objects: Objects) -> Iterator[list[Outcome]]:
    s = matrix_served
    anonymous = new_source()  # refused sign-ins and anonymous calls do not count against the signed-in callers
    out: list[Outcome] = []
    for op in operations(schema):
        rule = POLICY.get(op.key)
        if rule is None:
            continue  # test_every_route_has_a_reviewed_policy names it
        has_object = bool(op.params) or rule.body_object
        for caller in CALLERS:
            kinds: tuple[str, ...] = KINDS if has_object else ("none",)
            if caller is None or rule.public:
                kinds = kinds[1:2] if has_object else kinds  # one call: the answer does not depend on the object
                if caller is not None:
                    continue  # a public route: only anonymous is asked
            for kind in kinds:
                values: dict[str, int] = {}
                for param in (*op.params, *(("body_object",) if rule.body_object else ())):
                    value = object_value(s, objects, param, caller or "researcher1", kind)
                    if value is None:
                        break
                    values[param] = value
                else:
                    expected = expectation(rule, caller, kind)
                    if expected == "allowed" and (op.method != "GET" or rule.heavy):
                        continue  # would change or build what the matrix relies on (see tests/security/policy.py)
                    if expected == "maybe" and op.method != "GET":
                        continue
                    url = op.path.format(**values)
                    kwargs = request_body(op.method, op.path, caller or "researcher1", s.ids,
                                          values.get("body_object")) if op.has_body else {}  # fmt: skip
                    source = anonymous if caller is None else "127.0.0.1"
                    if op.query:
                        kwargs["params"] = QUERY[op.key]
                    r = s.call(caller, op.method, url, source=source, **kwargs)
                    out.append(Outcome(op, caller, kind, url, r.status_code, r.text, expected))
    yield out


def test_every_route_has_a_reviewed_policy(schema: dict[str, Any]) -> None:
    """A new route fails here until someone decides, in tests/security/policy.py, who may call it."""
    unreviewed = [str(op) for op in operations(schema) if op.key not in POLICY]
    assert not unreviewed, f"routes without an entry in tests/security/policy.py: {unreviewed}"
    for op in operations(schema):
        if op.has_body and not POLICY[op.key].public:
            request_body(op.method, op.path, "researcher1", {"researcher1": 1}, 1)  # KeyError: add its body
        if op.query:
            assert op.key in QUERY, f"{op}: add values of its required query parameters {op.query} to QUERY"


def test_the_policy_never_lets_the_operator_reach_data() -> None:
    for key, rule in POLICY.items():
        if rule.data:
            assert "operator" not in rule.own | rule.foreign | rule.maybe, key


def test_anonymous_gets_401_on_every_route_that_is_not_public(outcomes: list[Outcome]) -> None:
    wrong = [str(o) for o in outcomes if o.expected == "unauthenticated" and o.status != 401]
    assert not wrong, "\n".join(wrong)


def test_nobody_gets_a_2xx_beyond_their_role_or_ownership(outcomes: list[Outcome]) -> None:
    wrong = [str(o) for o in outcomes if o.expected == "denied" and 200 <= o.status < 300]
    assert not wrong, f"{len(wrong)} calls passed that the policy refuses:\n" + "\n".join(wrong)


def test_nobody_gets_a_2xx_on_a_missing_object(outcomes: list[Outcome]) -> None:
    wrong = [str(o) for o in outcomes if o.kind == "missing" and 200 <= o.status < 300]
    assert not wrong, "\n".join(wrong)


def test_the_operator_never_reaches_data(outcomes: list[Outcome]) -> None:
    wrong = [str(o) for o in outcomes if o.caller == "operator" and POLICY[o.op.key].data and o.status < 300]
    assert not wrong, "\n".join(wrong)


def _shape(o: Outcome) -> tuple[int, Any]:
    """Status and body with every number blanked: what tells a foreign object from a missing one, ids aside."""
    try:
        body = o.body and httpx.Response(200, content=o.body.encode()).json()
    except ValueError:
        body = o.body
    if isinstance(body, dict):
        return o.status, {k: re.sub(r"\d+", "N", str(v)) for k, v in body.items()}
    return o.status, re.sub(r"\d+", "N", str(body))


def test_foreign_and_missing_objects_answer_alike(outcomes: list[Outcome]) -> None:
    """A caller refused a foreign object gets exactly what they get for an id nobody has (uniform 404)."""
    by_call = {(o.op.key, o.caller, o.kind): o for o in outcomes}
    wrong = []
    for o in outcomes:
        if o.kind != "foreign" or o.expected != "denied":
            continue
        params = (*o.op.params, *(("body_object",) if POLICY[o.op.key].body_object else ()))
        if any(o.caller in KNOWS.get(p, NOBODY) for p in params):
            continue  # they may know it exists
        missing = by_call.get((o.op.key, o.caller, "missing"))
        if missing is not None and _shape(o) != _shape(missing):
            wrong.append(f"{o}\n    vs missing: {missing.status} {missing.body[:160]}")
    assert not wrong, f"{len(wrong)} foreign objects told apart from missing ones:\n" + "\n".join(wrong)


def test_allowed_reads_answer(outcomes: list[Outcome]) -> None:
    """The matrix is not vacuous: the reads the policy allows do answer (its objects are the right ones)."""
    allowed = [o for o in outcomes if o.expected == "allowed"]
    assert len(allowed) > 30
    wrong = [str(o) for o in allowed if not 200 <= o.status < 300]
    assert not wrong, "\n".join(wrong)


def test_no_call_fails_with_a_server_error(outcomes: list[Outcome]) -> None:
    assert len(outcomes) > 500
    wrong = [str(o) for o in outcomes if o.status >= 500]
    assert not wrong, "\n".join(wrong)


def test_a_project_does_not_lend_its_id_to_another_projects_objects(matrix_served: Served, objects: Objects) -> None:
    """Mixed ids: researcher1's own project with researcher2's analysis, job and release in it answer like an id
    nobody has (an object is reached through its own project only)."""
    s = matrix_served
    mine, theirs = objects.project["researcher1"], objects.job["researcher2"]
    for suffix in ("", "/release", "/download"):
        r = s.call("researcher1", "GET", f"/projects/{mine}/analyses/{theirs}{suffix}")
        missing = s.call("researcher1", "GET", f"/projects/{mine}/analyses/{MISSING}{suffix}")
        assert not 200 <= r.status_code < 300, r.text
        assert _shape_of(r) == _shape_of(missing), (suffix, r.text, missing.text)
    theirs_project = objects.project["researcher2"]
    token = {"name": "x", "scopes": ["data"], "days": 1, "project_id": theirs_project}
    r = s.call("researcher1", "POST", "/me/tokens", json=token)
    assert not 200 <= r.status_code < 300, r.text


def _shape_of(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, re.sub(r"\d+", "N", r.text)
