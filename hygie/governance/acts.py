# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""One way to carry out a governance act: in a transaction, with refusals recorded before they are returned.

Services record their successful acts inside the transaction (so act and record commit together). When a
service refuses (any :class:`GovernanceError`), the transaction is rolled back and the refusal is recorded in
a transaction of its own, then re-raised for the HTTP or CLI layer to show.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from hygie.audit import Outcome, record_now
from hygie.governance.accounts import Actor
from hygie.governance.errors import Denied, GovernanceError, Invalid, Unauthenticated
from hygie.hub import Hub


@contextmanager
def act(
    hub: Hub, actor: Actor, action: str, *, object: str | None = None, project_id: int | None = None
) -> Iterator[Session]:
    session = hub.session()
    try:
        yield session
        session.commit()
    except GovernanceError as exc:
        session.rollback()
        if not exc.recorded:
            record_now(
                hub.session,
                actor=actor.ref,
                role=actor.role_name,
                action=action,
                object=object,
                project_id=project_id,
                outcome=Outcome.DENIED if isinstance(exc, Denied | Unauthenticated) else Outcome.FAILED,
                # An invalid request's message may echo what was typed: the record keeps only its kind.
                detail={"reason": "invalid request" if isinstance(exc, Invalid) else exc.message, "status": exc.status},
            )
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
