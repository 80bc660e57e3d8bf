# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Who may call which route of the API: the reviewed policy the black-box matrix holds the served hub to.

Every operation of the OpenAPI schema (method + path) must have an entry here; a route added to the API without one
makes tests/security/test_authorization_matrix.py fail, so no route goes out unreviewed. An entry says:

- ``public``: anyone, signed in or not (nothing else is checked but that it never fails with a 5xx);
- ``own``: the roles that may call it on their own objects (a project they requested or belong to, their own token,
  their own account) or, for a route with no object, at all;
- ``foreign``: the roles that may call it on objects that are not theirs (a reviewer reading any project request);
- ``data``: it reaches people's data or the audit record's details (a view, analyses and their outputs, the airlock,
  the vault through breach review, audit events, alerts): the operator never gets a 2xx there, whatever the table
  says elsewhere;
- ``maybe``: roles for which both a 2xx and a refusal are acceptable (a policy choice not settled by the issue);
- ``heavy``: an allowed call is not sent (it builds files or runs work the matrix does not need).

Calls that change state (any method but GET) are sent only where they must be refused: an allowed one would change
the objects the rest of the matrix relies on (the in-process matrix, tests/portal/test_authorization_matrix.py,
checks that allowed calls pass).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RESEARCHERS = frozenset({"researcher1", "researcher2"})
REVIEWERS = frozenset({"reviewer1", "reviewer2"})
CITIZENS = frozenset({"citizen1", "citizen2"})
STAFF = RESEARCHERS | REVIEWERS | frozenset({"dpo", "operator", "auditor"})
EVERYONE = STAFF | CITIZENS
OVERSIGHT = REVIEWERS | frozenset({"dpo", "operator", "auditor"})
"""Who reads project requests (never their data) without being in them."""
NOBODY: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Rule:
    own: frozenset[str] = NOBODY
    foreign: frozenset[str] = NOBODY
    public: bool = False
    data: bool = False
    maybe: frozenset[str] = NOBODY
    heavy: bool = False
    body_object: bool = False
    """The object is named in the body (a token's project), not the path: own/foreign/missing apply to it."""


PUBLIC = Rule(public=True)


POLICY: dict[tuple[str, str], Rule] = {
    # service
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): Rule(own=frozenset({"operator", "auditor"})),
    # accounts and sign-in
    ("POST", "/auth/login"): PUBLIC,
    ("POST", "/auth/logout"): Rule(own=EVERYONE),
    ("GET", "/me"): Rule(own=EVERYONE),
    ("GET", "/me/tokens"): Rule(own=EVERYONE),
    ("POST", "/me/tokens"): Rule(own=RESEARCHERS, body_object=True),
    ("DELETE", "/me/tokens/{token_id}"): Rule(own=EVERYONE),
    ("GET", "/accounts"): Rule(own=frozenset({"dpo", "operator", "auditor"})),
    ("POST", "/accounts"): Rule(own=frozenset({"dpo"})),  # the body asks for a reviewer: never the operator
    ("POST", "/accounts/{account_id}/disable"): Rule(foreign=frozenset({"dpo", "operator"})),
    ("POST", "/accounts/{account_id}/enable"): Rule(foreign=frozenset({"dpo", "operator"})),
    ("POST", "/accounts/enrol"): PUBLIC,  # the holder, with the one-time code mailed to them
    ("POST", "/accounts/{account_id}/confirm"): Rule(foreign=frozenset({"dpo", "auditor"})),
    ("POST", "/accounts/{account_id}/enrolment-mail"): Rule(foreign=frozenset({"dpo"}), maybe=frozenset({"operator"})),
    # citizens
    ("POST", "/citizens/enrol"): PUBLIC,  # asks for an activation letter: the same answer whatever was typed
    ("POST", "/citizens/activate"): PUBLIC,  # the code of the letter, sent to the vault address
    ("GET", "/me/opt-out"): Rule(own=CITIZENS),
    ("POST", "/me/opt-out"): Rule(own=CITIZENS),
    ("DELETE", "/me/opt-out"): Rule(own=CITIZENS),
    ("GET", "/me/data-uses"): Rule(own=CITIZENS),
    ("GET", "/me/reimbursements"): Rule(own=CITIZENS, data=True),
    ("GET", "/me/breach-notices"): Rule(own=CITIZENS),
    ("GET", "/me/audit-entries"): Rule(own=CITIZENS, maybe=STAFF - {"operator"}),
    ("POST", "/me/contact-details"): Rule(own=CITIZENS),
    # projects (the request is readable by oversight; its data only by its researchers)
    ("POST", "/projects"): Rule(own=RESEARCHERS),
    ("GET", "/projects"): Rule(own=STAFF),
    ("GET", "/projects/{project_id}"): Rule(own=RESEARCHERS, foreign=OVERSIGHT),
    ("PATCH", "/projects/{project_id}"): Rule(own=RESEARCHERS),
    ("POST", "/projects/{project_id}/submit"): Rule(own=RESEARCHERS),
    ("POST", "/projects/{project_id}/decisions"): Rule(foreign=REVIEWERS),  # the DPO is not a reviewer
    ("POST", "/projects/{project_id}/annual-review"): Rule(foreign=REVIEWERS),
    ("POST", "/projects/{project_id}/members"): Rule(own=RESEARCHERS),
    ("POST", "/projects/{project_id}/suspend"): Rule(foreign=frozenset({"operator", "dpo"})),
    ("POST", "/projects/{project_id}/resume"): Rule(foreign=frozenset({"dpo"})),
    ("POST", "/projects/{project_id}/close"): Rule(own=RESEARCHERS, foreign=frozenset({"dpo"})),
    ("POST", "/projects/{project_id}/refresh"): Rule(own=RESEARCHERS, data=True),
    ("GET", "/projects/{project_id}/view"): Rule(own=RESEARCHERS, data=True),
    ("POST", "/projects/{project_id}/disclosure-delay"): Rule(foreign=frozenset({"dpo"})),
    ("GET", "/projects/{project_id}/dummy-data"): Rule(own=RESEARCHERS, heavy=True),
    ("POST", "/projects/{project_id}/dummy-data/aggregate"): Rule(own=RESEARCHERS),
    ("POST", "/projects/{project_id}/dummy-data/sql"): Rule(own=RESEARCHERS),
    # analyses and the airlock
    ("POST", "/projects/{project_id}/analyses/aggregate"): Rule(own=RESEARCHERS, data=True),
    ("POST", "/projects/{project_id}/analyses/sql"): Rule(own=RESEARCHERS, data=True),
    ("GET", "/projects/{project_id}/analyses"): Rule(own=RESEARCHERS, data=True),
    ("GET", "/projects/{project_id}/analyses/{job_id}"): Rule(own=RESEARCHERS, data=True),
    ("GET", "/projects/{project_id}/analyses/{job_id}/release"): Rule(own=RESEARCHERS, data=True),
    ("GET", "/projects/{project_id}/analyses/{job_id}/download"): Rule(own=RESEARCHERS, data=True),
    # control of spending: a project's released numbers, for its researchers and its overseers, never the operator
    ("GET", "/projects/{project_id}/control/runs"): Rule(
        own=RESEARCHERS, foreign=REVIEWERS | frozenset({"dpo", "auditor"}), data=True
    ),
    ("GET", "/projects/{project_id}/control/estimates"): Rule(
        own=RESEARCHERS, foreign=REVIEWERS | frozenset({"dpo", "auditor"}), data=True
    ),
    ("GET", "/projects/{project_id}/control/samples"): Rule(
        own=RESEARCHERS, foreign=REVIEWERS | frozenset({"dpo", "auditor"}), data=True
    ),
    # Control acts on the project's view: its researchers who pass the data gate, in a project whose purpose is a
    # control one. The matrix's projects are research ones, so their own researchers are refused there too: a
    # refusal is the right answer for them, and tests/control/test_api.py and the in-process matrix check that the
    # allowed calls pass in a control project. Control objects (leads, lifts, samples, claims) are none in this
    # world: their routes are called with an id nobody has (see object_value).
    ("POST", "/projects/{project_id}/control/runs"): Rule(own=RESEARCHERS, data=True),
    ("GET", "/projects/{project_id}/control/leads"): Rule(maybe=RESEARCHERS, data=True),
    ("POST", "/projects/{project_id}/control/leads/{lead_id}/lift"): Rule(own=RESEARCHERS, data=True),
    ("POST", "/projects/{project_id}/control/lifts/{lift_id}/identity"): Rule(own=RESEARCHERS, data=True),
    ("POST", "/projects/{project_id}/control/samples"): Rule(own=RESEARCHERS, data=True),
    ("POST", "/projects/{project_id}/control/reviewers"): Rule(own=RESEARCHERS, data=True),
    ("GET", "/projects/{project_id}/control/samples/{sample_id}/claims"): Rule(own=RESEARCHERS, data=True),
    ("GET", "/projects/{project_id}/control/samples/{sample_id}/claims/{claim_key}"): Rule(own=RESEARCHERS, data=True),
    ("POST", "/projects/{project_id}/control/samples/{sample_id}/claims/{claim_key}/decision"): Rule(
        own=RESEARCHERS, data=True
    ),
    ("POST", "/projects/{project_id}/control/samples/{sample_id}/estimate"): Rule(own=RESEARCHERS, data=True),
    # The second persons of a lift (control_lift_approver_roles): requests with their reasons, never an identity;
    # never the operator.
    ("GET", "/control/lifts"): Rule(own=REVIEWERS | frozenset({"dpo"}), data=True),
    ("POST", "/control/lifts/{lift_id}/decision"): Rule(foreign=REVIEWERS | frozenset({"dpo"}), data=True),
    # Reviewers check outputs; the DPO oversees and does not, unless the policy setting dpo_may_review says so (off
    # on the hub under test), the same rule as project decisions.
    ("GET", "/airlock"): Rule(own=REVIEWERS, data=True),
    ("GET", "/airlock/{release_id}"): Rule(foreign=REVIEWERS, data=True),
    ("POST", "/airlock/{release_id}/decisions"): Rule(foreign=REVIEWERS, data=True),
    # the public register and the citizen's view of it
    ("GET", "/policy"): PUBLIC,
    ("GET", "/register"): PUBLIC,
    # alerts and the audit record
    ("GET", "/alerts"): Rule(own=frozenset({"dpo", "auditor"}), data=True),
    ("GET", "/alerts/{alert_id}"): Rule(foreign=frozenset({"dpo", "auditor"}), data=True),
    ("POST", "/alerts/{alert_id}/acknowledge"): Rule(foreign=frozenset({"dpo"}), data=True),
    ("POST", "/alerts/{alert_id}/dismiss"): Rule(foreign=frozenset({"dpo"}), data=True),
    ("GET", "/audit/events"): Rule(own=frozenset({"dpo", "auditor"}), data=True),
    ("GET", "/audit/checkpoint"): PUBLIC,
    ("GET", "/audit/checkpoint/cosigned"): PUBLIC,
    ("GET", "/audit/public-key"): PUBLIC,
    ("GET", "/audit/proof/inclusion"): PUBLIC,
    ("GET", "/audit/proof/consistency"): PUBLIC,
    ("GET", "/audit/entries"): PUBLIC,
    ("GET", "/audit/entries/full"): Rule(own=frozenset({"dpo", "auditor"}), data=True),
    # breach response (the DPO's), the citizen's notices, the anonymous check
    ("GET", "/breach/incidents"): Rule(own=frozenset({"dpo"})),
    ("POST", "/breach/incidents"): Rule(own=frozenset({"dpo"})),
    ("POST", "/breach/incidents/{incident_id}/confirm"): Rule(
        foreign=frozenset({"operator", "auditor"}),
        maybe=frozenset({"dpo"}),  # a second person, not the importer
    ),
    ("GET", "/breach/pending"): Rule(own=frozenset({"dpo", "operator", "auditor"})),
    ("GET", "/breach/incidents/{incident_id}/review/{row}"): Rule(foreign=frozenset({"dpo"}), data=True),
    ("POST", "/breach/incidents/{incident_id}/review/{row}/reveal"): Rule(foreign=frozenset({"dpo"}), data=True),
    # The approvers (breach_reveal_approver_roles) and the DPO who asked; never the operator (the DPO's reasons).
    ("GET", "/breach/reveals"): Rule(own=frozenset({"dpo", "auditor"})),
    ("POST", "/breach/reveals/{reveal_id}/decision"): Rule(foreign=frozenset({"auditor"}), data=True),
    ("POST", "/breach/reveals/{reveal_id}/identity"): Rule(foreign=frozenset({"dpo"}), data=True),
    ("GET", "/breach/incidents/{incident_id}"): Rule(foreign=frozenset({"dpo"})),
    ("PUT", "/breach/incidents/{incident_id}/mapping"): Rule(foreign=frozenset({"dpo"}), data=True),
    ("GET", "/breach/incidents/{incident_id}/review"): Rule(foreign=frozenset({"dpo"}), data=True),
    ("POST", "/breach/incidents/{incident_id}/review/{row}"): Rule(foreign=frozenset({"dpo"}), data=True),
    ("POST", "/breach/incidents/{incident_id}/notify"): Rule(foreign=frozenset({"dpo"}), data=True),
    ("GET", "/breach/incidents/{incident_id}/report"): Rule(foreign=frozenset({"dpo"})),
    ("POST", "/breach/outbox/send"): Rule(own=frozenset({"dpo"})),
    ("POST", "/breach/sweep"): Rule(own=frozenset({"dpo"})),
    ("GET", "/breach-check/key"): PUBLIC,
    ("POST", "/breach-check/evaluate"): PUBLIC,
    ("POST", "/breach-check/lookup"): PUBLIC,
}

REASON = {"reason": "a reason long enough to be one"}
APPROVE = {"decision": "approve", "reason": "lawful purpose, minimal scope"}
SQL = {"sql": "SELECT count(*) AS n FROM ER_PRS_F"}
LIFT = {"reason": "an investigation of the insurer's control service, case 2026-17"}
AGGREGATE = {"group_by": ["sex"]}


def request_body(method: str, path: str, caller: str, ids: dict[str, int], body_object: int | None) -> dict[str, Any]:
    """httpx arguments carrying a valid body for an operation (so a refusal is about who asks, not what).

    Raises KeyError for an operation with no body here: one that takes a body needs an entry with its policy."""
    from tests.portal.world import PASSWORD, project_request

    scopes = {"auditor": ["audit"], "citizen1": ["citizen"], "citizen2": ["citizen"]}
    bodies: dict[tuple[str, str], Any] = {
        ("POST", "/auth/login"): {"username": "nobody-here", "password": "not the password at all", "totp": "000000"},
        ("POST", "/me/tokens"): {
            "name": "matrix", "days": 1, "project_id": body_object,
            "scopes": ["data"] if caller in RESEARCHERS else scopes.get(caller, ["governance"]),
        },
        ("POST", "/accounts"): {"username": f"matrix-{caller}", "role": "reviewer", "organisation": "Test",
                                "email": f"matrix-{caller}@example.org"},
        ("POST", "/accounts/enrol"): {"code": "not-a-code", "password": PASSWORD},
        ("POST", "/accounts/{account_id}/confirm"): {"email": "someone@example.org"},
        ("POST", "/breach/incidents/{incident_id}/review/{row}/reveal"): {
            "reason": "the law needs this identity to notify the person by post"},
        ("POST", "/breach/reveals/{reveal_id}/decision"): {"decision": "approve", **REASON},
        ("POST", "/citizens/enrol"): {"nir": "1" * 15, "last_name": "Nobody", "birth_date": "1970-01-01"},
        ("POST", "/citizens/activate"): {"code": "ABCD-EFGH-JKMN-PQRS", "nir": "1" * 15,
                                         "username": "matrix-citizen", "password": PASSWORD},
        ("POST", "/me/contact-details"): {"email": None},
        ("POST", "/projects"): project_request(),
        ("PATCH", "/projects/{project_id}"): {"title": "A better title"},
        ("POST", "/projects/{project_id}/decisions"): APPROVE,
        ("POST", "/projects/{project_id}/annual-review"): APPROVE,
        ("POST", "/projects/{project_id}/members"): {"account_id": ids[caller]},
        ("POST", "/projects/{project_id}/suspend"): REASON,
        ("POST", "/projects/{project_id}/resume"): REASON,
        ("POST", "/projects/{project_id}/close"): REASON,
        ("POST", "/projects/{project_id}/disclosure-delay"): {"until": "2030-01-01T00:00:00Z", **REASON},
        ("POST", "/projects/{project_id}/dummy-data/aggregate"): AGGREGATE,
        ("POST", "/projects/{project_id}/dummy-data/sql"): SQL,
        ("POST", "/projects/{project_id}/analyses/aggregate"): AGGREGATE,
        ("POST", "/projects/{project_id}/analyses/sql"): SQL,
        ("POST", "/airlock/{release_id}/decisions"): APPROVE,
        ("POST", "/projects/{project_id}/control/runs"): {"rules": ["volume"]},
        ("POST", "/projects/{project_id}/control/leads/{lead_id}/lift"): LIFT,
        ("POST", "/projects/{project_id}/control/reviewers"): {"account_id": ids[caller],
                                                               "training": "CERT-style review course, 2 days"},
        ("POST", "/projects/{project_id}/control/samples/{sample_id}/claims/{claim_key}/decision"): {
            "decision": "proper"},
        ("POST", "/control/lifts/{lift_id}/decision"): {"decision": "approve", **LIFT},
        ("POST", "/alerts/{alert_id}/acknowledge"): {"note": "seen, looking into it"},
        ("POST", "/alerts/{alert_id}/dismiss"): {"note": "expected: a test"},
        ("PUT", "/breach/incidents/{incident_id}/mapping"): {"columns": {"0": "nir"}},
        ("POST", "/breach/incidents/{incident_id}/review/{row}"): {"decision": "confirm"},
        ("POST", "/breach-check/evaluate"): {"blinded": "AAAA"},
        ("POST", "/breach-check/lookup"): {"attempt": "not-an-attempt", "prefix": 0},
    }  # fmt: skip
    if (method, path) in MULTIPART:
        return MULTIPART[(method, path)]
    return {"json": bodies[(method, path)]}


QUERY: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/audit/entries"): {"start": 0, "end": 1},
    ("GET", "/audit/entries/full"): {"start": 0, "end": 1},
    ("GET", "/audit/proof/inclusion"): {"index": 0},
    ("GET", "/audit/proof/consistency"): {"from": 0},
}
"""Valid values of the required query parameters (an operation with one and no entry here fails the matrix)."""


KNOWS: dict[str, frozenset[str]] = {
    "project_id": OVERSIGHT,
    "job_id": OVERSIGHT,
    "body_object": OVERSIGHT,
    "release_id": REVIEWERS,
    "account_id": frozenset({"dpo", "operator", "auditor"}),
    "incident_id": frozenset({"dpo", "operator", "auditor"}),
    "row": frozenset({"dpo", "operator", "auditor"}),
    "reveal_id": frozenset({"dpo", "auditor"}),
    "alert_id": frozenset({"dpo", "auditor"}),
    "token_id": NOBODY,
    # The second persons list the requests awaiting them; nobody else learns which lift ids exist.
    "lift_id": REVIEWERS | frozenset({"dpo"}),
}
"""Who may know an object exists (they list or read such objects): a refusal to anyone else must not tell a foreign
object from a missing one. A path parameter not listed here counts as known to nobody."""


MULTIPART: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/breach/incidents"): {
        "files": {"file": ("leak.csv", b"NIR,NOM\n")},
        "data": {"incident": "matrix"},
    },
}
"""Operations whose body is a form (a leaked file)."""
