# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Creation lineage: which accounts one person made, directly or through accounts they made.

Separation of duties counts such accounts as one person's: a project's requester and its approvers, an account and
the second person who confirms it, a breach act and the second person who approves it must come from different
lineages. Accounts made at the console (or by the system) end a chain: the console is the controller's installation.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from hygie.governance.models import Account


def creator_id(created_by: str) -> int | None:
    """The account that created another ("account:N"), or None for the console, the system or a test fixture."""
    kind, _, rest = created_by.partition(":")
    return int(rest) if kind == "account" and rest.isdigit() else None


def lineage(session: Session, account_id: int) -> set[int]:
    """The account and every account up its creation chain (whoever created it, whoever created that one...)."""
    out = {account_id}
    account = session.get(Account, account_id)
    while account is not None:
        creator = creator_id(account.created_by)
        if creator is None or creator in out:
            break
        out.add(creator)
        account = session.get(Account, creator)
    return out


def shared_lineage(session: Session, first: int, second: int) -> list[int]:
    """Accounts in both creation chains: non-empty when one created the other (directly or through accounts it
    created) or both descend from one account. Such a pair is one person's accounts."""
    return sorted(lineage(session, first) & lineage(session, second))
