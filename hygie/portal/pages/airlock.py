# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The output checkers' pages (reviewers; the DPO only if the policy setting ``dpo_may_review`` says so): the
airlock queue, one output in full with the checks' findings, and the decision to release or reject it, with a
reason.

The findings are the checks' messages (``hygie.i18n``): said in French from the catalogue by the identifiers the
release keeps beside their English text; a release made before it kept them shows its English, marked as such.

The pages call the JSON API's route functions (``hygie.portal.routes.analysis``): the service refuses a checker
who wrote the analysis or belongs to its project, and a second decision by the same checker. An output is shown
only while it awaits checkers: the decision that releases or rejects it sends the checker back to the queue.
"""

from __future__ import annotations

from typing import Any, Literal, cast

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from hygie.governance.accounts import Actor
from hygie.governance.policy import Role, reviewing_roles
from hygie.i18n import N_, message_from_json, translate
from hygie.portal.pages.messages import RELEASE_STATUS, Said, fr
from hygie.portal.pages.web import PageRoute, hub_of, page_actor, posted_by, redirect, render, require_role
from hygie.portal.routes import analysis as api

router = APIRouter(prefix="/relecture/sas", route_class=PageRoute, include_in_schema=False)


def checkers(request: Request) -> tuple[Role, ...]:
    """Who checks outputs: the same rule as the API's (``reviewing_roles``, the DPO only if ``dpo_may_review``)."""
    return tuple(reviewing_roles(hub_of(request).settings.dpo_may_review))


MIN_REASON = 10


@router.get("", response_class=HTMLResponse)
def queue(request: Request, fait: str = Query("", max_length=20)) -> HTMLResponse:
    actor = page_actor(request)
    require_role(actor, *checkers(request))
    items = api.airlock(hub_of(request), actor)
    needed = hub_of(request).settings.analysis_checkers_required
    done = fait if fait in ("released", "rejected") else ""
    return render(request, "sas/liste.html", {"items": items, "needed": needed, "done": done}, actor=actor)


def _detail_context(
    request: Request, actor: Actor, release_id: int, done: str, errors: dict[str, str], reason: str
) -> dict[str, object]:
    hub = hub_of(request)
    detail = api.airlock_release(release_id, hub, actor)
    mine = [d for d in detail.decisions if d.checker_id == actor.account_id]
    return {"detail": detail, "findings": findings_said(detail.findings, detail.findings_messages),
            "needed": hub.settings.analysis_checkers_required,
            "may_decide": detail.status == "pending" and not mine, "done": done, "errors": errors,
            "reason": reason, "release_status": RELEASE_STATUS}  # fmt: skip


def findings_said(findings: list[str], messages: list[dict[str, Any] | None] | None) -> list[Said]:
    """Each finding in French from the catalogue when the release kept its identifier, else its English text marked
    as English (an older release, a message the catalogue lacks, or parameters that no longer fit)."""
    if messages is None or len(messages) != len(findings):
        return [Said(text, "en") for text in findings]
    return [_finding_said(text, data) for text, data in zip(findings, messages, strict=True)]


def _finding_said(text: str, data: dict[str, Any] | None) -> Said:
    if data is None:
        return Said(text, "en")
    try:
        french = translate(message_from_json(data), "fr")
    except (KeyError, IndexError, TypeError, ValueError):
        french = None
    return Said(text, "en") if french is None else Said(french, "fr", text)


@router.get("/{release_id}", response_class=HTMLResponse)
def release_page(request: Request, release_id: int, fait: str = Query("", max_length=20)) -> HTMLResponse:
    actor = page_actor(request)
    require_role(actor, *checkers(request))
    context = _detail_context(request, actor, release_id, fait, {}, "")
    return render(request, "sas/sortie.html", context, actor=actor)


@router.post("/{release_id}/decision", response_class=HTMLResponse)
async def decide(request: Request, release_id: int) -> Response:
    form, actor = await posted_by(request, *checkers(request))
    decision = str(form.get("decision", ""))
    reason = str(form.get("motif", "")).strip()
    errors: dict[str, str] = {}
    if decision not in ("approve", "reject"):
        errors["decision"] = fr(N_("Choose to release or to reject."))
    if len(reason) < MIN_REASON:
        errors["motif"] = fr(N_("Give the reason for your decision in at least {count} characters.", count=MIN_REASON))
    if errors:
        context = await run_in_threadpool(_detail_context, request, actor, release_id, "", errors, reason)
        return render(request, "sas/sortie.html", context, actor=actor, status=422)
    body = api.DecisionRequest(decision=cast(Literal["approve", "reject"], decision), reason=reason)
    state = await run_in_threadpool(api.decide, release_id, body, hub_of(request), actor)
    if state.status != "pending":
        # Released or rejected: its rows leave the airlock (its project's business now), back to the queue.
        return redirect(f"/relecture/sas?fait={state.status}")
    return redirect(f"/relecture/sas/{release_id}?fait={decision}")
