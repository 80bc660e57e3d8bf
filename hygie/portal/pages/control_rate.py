# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The improper-payment rate's pages: a control project's samples and released rate (with its interval drawn and
how it was computed), the review queue of a sample, and one sampled claim with the reviewer's decision form.

Every page calls :mod:`hygie.control.sample` and :mod:`hygie.control.review`, which check who may act (the data
gate, the trained reviewers, the drawer who never reviews) and record each act before it is answered. The rate is
never shown next to leads detected by rules, and the page says that it is not a measure of fraud.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from hygie.control import review, sample
from hygie.control.estimate import CONFIDENCE
from hygie.control.sample import RateEstimate
from hygie.governance.errors import Invalid
from hygie.governance.policy import Role
from hygie.i18n import N_
from hygie.portal.pages.messages import French, fr
from hygie.portal.pages.web import PageRoute, hub_of, page_actor, posted_by, redirect, render, templates

router = APIRouter(prefix="/recherche/projets", route_class=PageRoute, include_in_schema=False)

BASE = "/recherche/projets/{pid}/paiements-indus"
DONE = {
    "tirage": fr(N_("The sample is drawn; its seed is recorded in the audit log.")),
    "relecteur": fr(N_("The trained reviewer is designated.")),
    "decision": fr(N_("Your decision is recorded in the audit log.")),
    "estimation": fr(N_("The estimate is released.")),
}
REASONS = {code: fr(label) for code, label in review.REASONS.items()}
DECISIONS = {decision: fr(label) for decision, label in review.DECISION_LABELS.items()}
"""An improper claim's reasons and a claim's decisions, as the review pages say them."""
AMOUNT_FORMAT = French(fr(N_("the amount in error is written in euros, for example 12.50")))
"""A form's own check, said in French only: no service refused it, so no English message goes under it."""
CHART_WIDTH, CHART_LEFT, CHART_RIGHT = 640, 20, 620


def control_project(request: Request, project: Any) -> bool:
    """Whether a project's page links to its improper-payment rate: its purpose is one control runs under."""
    return str(getattr(project, "purpose", "")) in hub_of(request).settings.control_purposes


templates.env.globals["control_project"] = control_project


def percent(value: float, digits: int = 2) -> str:
    """7.66 % in French: '7,66 %' (a fraction in, a percentage out)."""
    return f"{value * 100:.{digits}f}".replace(".", ",") + "\u00a0%"


def euros(value: float) -> str:
    whole = f"{value:,.0f}".replace(",", "\u202f")
    return f"{whole}\u00a0€"


def chart(estimate: RateEstimate) -> dict[str, Any]:
    """Positions (SVG units) of the estimate and its interval on an axis from 0 to a round bound above it."""
    top = max(estimate.high * 1.25, 0.01)
    step = 10 ** math.floor(math.log10(top))
    top = math.ceil(top / step) * step
    span = CHART_RIGHT - CHART_LEFT

    def x(value: float) -> float:
        return float(round(CHART_LEFT + span * min(max(value, 0.0), top) / top, 1))

    ticks = [(x(i * top / 4), _tick(i * top / 4)) for i in range(5)]
    rate = x(estimate.rate)
    # The label above the estimate stays inside the drawing at either end of the axis.
    anchor = "start" if rate < CHART_LEFT + 40 else "end" if rate > CHART_RIGHT - 40 else "middle"
    return {"low": x(estimate.low), "high": x(estimate.high), "rate": rate, "ticks": ticks, "anchor": anchor,
            "width": CHART_WIDTH}  # fmt: skip


def _tick(value: float) -> str:
    """An axis label: as few decimals as the value needs (0 %, 0,25 %, 2,5 %, 10 %)."""
    text = f"{value * 100:.2f}".rstrip("0").rstrip(".").replace(".", ",")
    return f"{text}\u00a0%"


def statement(estimate: RateEstimate) -> str:
    """The one sentence the rate is said in (French), never without its interval and n."""
    return fr(
        N_(
            "Estimated improper payments: {rate} (95% CI: {low} – {high}), from {count} reviewed claims",
            rate=percent(estimate.rate),
            low=percent(estimate.low),
            high=percent(estimate.high),
            count=estimate.reviewed,
        )
    )


def _overview_context(request: Request, pid: int, done: str) -> dict[str, Any]:
    hub = hub_of(request)
    actor = page_actor(request)
    seen = review.overview(hub, actor, pid)
    rows = []
    for item in seen.samples:
        est = item.estimate
        rows.append({"item": item, "statement": statement(est) if est else None, "chart": chart(est) if est else None,
                     "amount": euros(est.improper_amount) if est else None,
                     "amount_low": euros(est.amount_low) if est else None,
                     "amount_high": euros(est.amount_high) if est else None,
                     "total": euros(est.total_amount) if est else None})  # fmt: skip
    settings = hub.settings
    return {
        "project": seen.project,
        "rows": rows,
        "reviewers": seen.reviewers,
        "members": [
            m
            for m in seen.members
            if m.account_id != actor.account_id and m.account_id not in {r.account_id for r in seen.reviewers}
        ],
        "is_researcher": actor.role == Role.RESEARCHER,
        "is_requester": seen.project.requester_id == actor.account_id,
        "done": DONE.get(done, ""),
        "settings": {
            "half_width": percent(settings.control_target_half_width, 1),
            "expected": percent(settings.control_expected_rate, 1),
            "min": settings.control_min_per_stratum,
            "bands": ", ".join(f"{b:g}" for b in settings.control_amount_bands),
            "threshold": max(seen.project.threshold, settings.disclosure_threshold),
            "confidence": percent(CONFIDENCE, 0),
        },
        "actor": actor,
    }


@router.get("/{pid}/paiements-indus", response_class=HTMLResponse)
def rate_page(request: Request, pid: int, fait: str = "") -> HTMLResponse:
    context = _overview_context(request, pid, fait[:20])
    return render(request, "paiements-indus/taux.html", context, actor=context["actor"])


@router.post("/{pid}/paiements-indus/tirage", response_class=HTMLResponse)
async def draw_page(request: Request, pid: int) -> Response:
    _form, actor = await posted_by(request, Role.RESEARCHER)
    await run_in_threadpool(sample.draw, hub_of(request), actor, pid)
    return redirect(BASE.format(pid=pid) + "?fait=tirage")


@router.post("/{pid}/paiements-indus/relecteurs", response_class=HTMLResponse)
async def designate_page(request: Request, pid: int) -> Response:
    form, actor = await posted_by(request, Role.RESEARCHER)
    account = str(form.get("compte", ""))
    if not account.isdigit():
        raise Invalid(French(fr(N_("choose the project member to designate"))))
    training = str(form.get("formation", ""))[:300]
    await run_in_threadpool(review.designate, hub_of(request), actor, pid, int(account), training)
    return redirect(BASE.format(pid=pid) + "?fait=relecteur")


@router.post("/{pid}/paiements-indus/echantillons/{sid}/estimation", response_class=HTMLResponse)
async def release_page(request: Request, pid: int, sid: int) -> Response:
    _form, actor = await posted_by(request, Role.RESEARCHER)
    await run_in_threadpool(lambda: review.release(hub_of(request), actor, sid, project_id=pid))
    return redirect(BASE.format(pid=pid) + "?fait=estimation")


@router.get("/{pid}/paiements-indus/echantillons/{sid}", response_class=HTMLResponse)
def queue_page(request: Request, pid: int, sid: int, fait: str = "") -> HTMLResponse:
    actor = page_actor(request)
    items = review.queue(hub_of(request), actor, sid, project_id=pid)
    context = {"pid": pid, "queue": items, "done": DONE.get(fait[:20], ""), "euros": euros,
               "labels": DECISIONS, "reasons": REASONS}  # fmt: skip
    return render(request, "paiements-indus/file.html", context, actor=actor)


@router.get("/{pid}/paiements-indus/echantillons/{sid}/dossiers/{claim}", response_class=HTMLResponse)
def claim_page(request: Request, pid: int, sid: int, claim: int) -> HTMLResponse:
    actor = page_actor(request)
    detail = review.claim_detail(hub_of(request), actor, sid, claim, project_id=pid)
    context = {"pid": pid, "sid": sid, "detail": detail, "reasons": REASONS}
    return render(request, "paiements-indus/dossier.html", context, actor=actor)


@router.post("/{pid}/paiements-indus/echantillons/{sid}/dossiers/{claim}", response_class=HTMLResponse)
async def decide_page(request: Request, pid: int, sid: int, claim: int) -> Response:
    form, actor = await posted_by(request, Role.RESEARCHER)
    decision = {"conforme": review.PROPER, "non-conforme": review.IMPROPER}.get(str(form.get("decision", "")))
    if decision is None:
        raise Invalid(French(fr(N_('choose "proper" or "improper"'))))
    reason = str(form.get("motif", "")) or None
    amount_text = str(form.get("montant", "")).strip().replace(",", ".").replace("\u00a0", "").replace(" ", "")
    try:
        amount = float(amount_text) if amount_text else None
    except ValueError:
        raise Invalid(AMOUNT_FORMAT) from None
    if amount is not None and not math.isfinite(amount):
        raise Invalid(AMOUNT_FORMAT)
    if decision == review.PROPER:
        reason, amount = None, None

    def act() -> None:
        review.decide(hub_of(request), actor, sid, claim, decision, reason=reason, error_amount=amount,
                      project_id=pid)  # fmt: skip

    await run_in_threadpool(act)
    return redirect(BASE.format(pid=pid) + f"/echantillons/{sid}?fait=decision")
