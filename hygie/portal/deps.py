# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Request dependencies: the hub, and who is asking."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from hygie.audit import Outcome, record_now
from hygie.governance.accounts import Accounts, Actor
from hygie.governance.errors import Unauthenticated
from hygie.hub import Hub
from hygie.i18n import N_

bearer = HTTPBearer(auto_error=False, description="A session token (hs_…) from POST /auth/login, or an API token")


async def get_hub(request: Request) -> Hub:
    # Async: FastAPI runs a plain function dependency in its thread pool, a thread hop (and its share of the
    # event loop's time) per request for reading an attribute.
    hub: Hub = request.app.state.hub
    return hub


HubDep = Annotated[Hub, Depends(get_hub)]


def current_actor(
    request: Request,
    hub: HubDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    if credentials is None:
        # Anonymous attempts on protected routes are on the record too (paths carry ids, never identifiers).
        record_now(hub.session, actor="anonymous", action="auth.token", outcome=Outcome.DENIED,
                   detail={"reason": "no credentials", "route": request.url.path})  # fmt: skip
        error = Unauthenticated(N_("sign in first (POST /auth/login) and send the token as 'Authorization: Bearer …'"))
        error.recorded = True
        raise error
    with hub.session() as session:
        try:
            return Accounts(session, hub.custody, hub.settings).authenticate(credentials.credentials)
        except Unauthenticated as exc:
            # Refused credentials are authentication events too; the token itself is never recorded.
            record_now(hub.session, actor="anonymous", action="auth.token", outcome=Outcome.DENIED,
                       detail={"reason": exc.message})  # fmt: skip
            exc.recorded = True
            raise


ActorDep = Annotated[Actor, Depends(current_actor)]


def answer(model: BaseModel) -> Response:
    """``model`` as the JSON FastAPI would write for it (by alias), built once: for a busy route declared with
    ``response_model=`` and returning this, FastAPI neither validates the model a second time nor sends that
    validation to its thread pool (a thread hop per request for a plain function endpoint)."""
    return Response(model.model_dump_json(by_alias=True), media_type="application/json")
