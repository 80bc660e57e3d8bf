# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Attack: the DPO alone grants data access.

The DPO creates a researcher and a reviewer (``POST /accounts``), would receive their second-factor URIs, has the
puppet researcher request a project, approves it with the puppet reviewer, counts as a reviewer himself, and an
aggregate is released. What must not happen: a credential in the creator's hands, a puppet that can sign in, the
DPO's approval counting, a project active on the DPO's word.
"""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx

from tests.portal.world import PASSWORD, project_request
from tests.security.conftest import APPROVE, Mailbox, Served, new_source

CREDENTIAL = re.compile(r"otpauth://|totp_secret|totp_uri\"\s*:\s*\"|\"(code|secret|password)\"\s*:\s*\"", re.I)


def create_account(s: Served, creator: str, username: str, role: str) -> httpx.Response:
    """The creator's request as the attacker writes it: a username, a role, the holder's e-mail address (the new API
    mails the holder an enrolment code) and a password of the creator's choosing (the old API took one). Whichever
    the hub accepts, the answer must not hand the creator a way to sign in as the holder."""
    body = {"username": username, "role": role, "email": f"{username}@dpo-mailbox.example", "password": PASSWORD,
            "organisation": "Puppets"}  # fmt: skip
    r = s.call(creator, "POST", "/accounts", json=body)
    if r.status_code >= 400:  # refused because a password was given: the same creation without it
        del body["password"]
        r = s.call(creator, "POST", "/accounts", json=body)
    return r


def puppet_session(s: Served, username: str, answer: dict[str, Any]) -> str | None:
    """A session as the puppet, from what the creator was handed (the old API's otpauth URI); None if impossible."""
    uri = (answer.get("totp_uri") or "") if isinstance(answer, dict) else ""
    secret = parse_qs(urlparse(uri).query).get("secret", [""])[0]
    if not secret:
        return None
    from hygie.governance import credentials

    raw = base64.b32decode(secret + "=" * (-len(secret) % 8))
    r = s.call(None, "POST", "/auth/login",
               json={"username": username, "password": PASSWORD, "totp": credentials.totp_code(raw)})  # fmt: skip
    return str(r.json()["token"]) if r.status_code == 200 else None


def test_the_creator_of_an_account_never_sees_its_credentials(served: Served) -> None:
    for role in ("researcher", "reviewer"):
        r = create_account(served, "dpo", f"puppet-{role}-creds", role)
        assert not CREDENTIAL.search(r.text), (role, r.status_code, r.text)


def test_the_dpo_and_two_puppets_cannot_activate_a_project(served: Served) -> None:
    s = served
    made = {role: create_account(s, "dpo", f"puppet-{role}", role) for role in ("researcher", "reviewer")}
    sessions = {role: puppet_session(s, f"puppet-{role}", r.json()) for role, r in made.items()}
    # With the puppets' sessions (if the hub handed them over) the DPO walks the whole attack.
    requester = sessions["researcher"]
    if requester is None:
        return  # no way to sign in as the puppet researcher: the attack stops here, as it must
    auth = {"Authorization": f"Bearer {requester}"}
    r = s.call(None, "POST", "/projects", json=project_request(), headers=auth)
    assert r.status_code == 200, r.text
    pid = r.json()["id"]
    s.call(None, "POST", f"/projects/{pid}/submit", headers=auth)
    if sessions["reviewer"] is not None:
        s.call(None, "POST", f"/projects/{pid}/decisions", json=APPROVE,
               headers={"Authorization": f"Bearer {sessions['reviewer']}"})  # fmt: skip
    s.call("dpo", "POST", f"/projects/{pid}/decisions", json=APPROVE)
    status = s.call("reviewer1", "GET", f"/projects/{pid}").json()["status"]
    assert status != "active", "the DPO and two accounts he created activated a project"
    r = s.call(None, "POST", f"/projects/{pid}/analyses/aggregate", json={"group_by": ["sex"]}, headers=auth)
    assert not 200 <= r.status_code < 300, r.text


def test_the_dpo_approval_does_not_count(served: Served) -> None:
    """An honest researcher's request, one real reviewer and the DPO: not two approvals."""
    s = served
    pid = s.submitted("researcher1")
    r = s.call("dpo", "POST", f"/projects/{pid}/decisions", json=APPROVE)
    assert not 200 <= r.status_code < 300, r.text
    r = s.call("reviewer1", "POST", f"/projects/{pid}/decisions", json=APPROVE)
    assert r.status_code == 200, r.text
    assert r.json()["status"] != "active", r.text
    r = s.call("researcher1", "GET", f"/projects/{pid}/view")
    assert not 200 <= r.status_code < 300, r.text


def test_the_dpo_cannot_confirm_an_account_he_created(served: Served) -> None:
    """Creating a reviewer needs a second person: the creator confirming it himself does not count."""
    s = served
    r = create_account(s, "dpo", "puppet-reviewer-self", "reviewer")
    if not 200 <= r.status_code < 300:
        return  # the DPO may not create reviewers at all: nothing to confirm
    account_id = r.json()["account"]["id"]
    r = s.call(
        "dpo", "POST", f"/accounts/{account_id}/confirm", json={"email": "puppet-reviewer-self@dpo-mailbox.example"}
    )
    assert not 200 <= r.status_code < 300, r.text


def enrol_from_mailbox(s: Served, mailbox: Mailbox, username: str, address: str) -> bool:
    """New API (H1): whoever reads ``address`` enrols as the holder with the code mailed there
    (``POST /accounts/enrol`` with the code and a password; the answer gives the second factor, once). True when
    it worked; the second factor then goes where the suite's sign-ins find it."""
    code = mailbox.code_for(address)
    if code is None:
        return False
    r = s.call(None, "POST", "/accounts/enrol", json={"code": code, "password": PASSWORD}, source=new_source())
    if r.status_code != 200:
        return False
    secret = r.json()["totp_secret"]
    s.world.secrets[username] = base64.b32decode(secret + "=" * (-len(secret) % 8))
    return True


def mailbox_puppet(s: Served, mailbox: Mailbox, username: str, role: str) -> bool:
    """The DPO creates an account with his own mailbox as the holder's address; where a second person must confirm
    it, the DPO's own confirmation is refused and the auditor is fooled into confirming; the DPO enrols from the code
    that reaches his mailbox. True when the DPO ends up holding a usable account."""
    address = f"{username}@dpo-mailbox.example"
    r = s.call("dpo", "POST", "/accounts", json={"username": username, "role": role, "email": address})
    assert r.status_code == 200, r.text
    account = r.json()["account"]
    if account.get("status") == "pending_confirmation":
        r = s.call("dpo", "POST", f"/accounts/{account['id']}/confirm", json={"email": address})
        assert not 200 <= r.status_code < 300, r.text  # the creator is no second person
        s.call("auditor", "POST", f"/accounts/{account['id']}/confirm", json={"email": address})  # fooled
    return enrol_from_mailbox(s, mailbox, username, address)


def test_puppets_enrolled_from_the_dpos_own_mailbox_cannot_activate_his_project(
    served: Served, mailbox: Mailbox
) -> None:
    """Even holding a researcher and a reviewer he created (his mailbox, a fooled confirmer), the DPO gets no project
    active: the DPO does not review, and a reviewer made by the requester's creator does not count."""
    s = served
    if not mailbox_puppet(s, mailbox, "puppet-r-mailbox", "researcher"):
        return  # the DPO holds no researcher: the attack stops here
    has_reviewer = mailbox_puppet(s, mailbox, "puppet-v-mailbox", "reviewer")
    pid = s.submitted("puppet-r-mailbox")
    if has_reviewer:
        s.call("puppet-v-mailbox", "POST", f"/projects/{pid}/decisions", json=APPROVE)
    s.call("dpo", "POST", f"/projects/{pid}/decisions", json=APPROVE)
    s.call("reviewer1", "POST", f"/projects/{pid}/decisions", json=APPROVE)  # one honest reviewer
    assert s.call("reviewer1", "GET", f"/projects/{pid}").json()["status"] != "active"
    r = s.call("puppet-r-mailbox", "GET", f"/projects/{pid}/view")
    assert not 200 <= r.status_code < 300, r.text
