# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A researcher's pages: my projects, request a project (the scope built from the policy), one project and its view.

Every page calls the same functions as the JSON API (``hygie.portal.routes.projects``), so a page shows what
the API answers, is refused where the API refuses, and is recorded the same way.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from hygie.governance.errors import GovernanceError
from hygie.governance.policy import Role
from hygie.i18n import N_
from hygie.portal.pages import catalogue
from hygie.portal.pages.messages import fr, french, validation_error
from hygie.portal.pages.web import (
    PageRoute,
    as_list,
    hub_of,
    page_actor,
    posted_by,
    redirect,
    render,
    require_role,
)
from hygie.portal.routes import projects as api

router = APIRouter(prefix="/recherche", route_class=PageRoute, include_in_schema=False)

SEXES = {"1": fr(N_("Men")), "2": fr(N_("Women"))}
FIELD_NAMES = {
    "title": "titre",
    "organisation": "organisme",
    "purpose": "finalite",
    "justification": "justification",
    "public_summary": "resume",
    "duration_days": "duree",
    "release_mode": "mode_publication",
    "privacy_budget": "budget",
}
"""API field -> form field, to put a validation error next to the field it concerns."""
FORM_ERRORS = fr(N_("The form has errors: correct the fields marked."))


@router.get("/projets", response_class=HTMLResponse)
def my_projects(request: Request) -> HTMLResponse:
    actor = page_actor(request)
    require_role(actor, Role.RESEARCHER)
    projects = api.list_projects(hub_of(request), actor, None)
    return render(request, "recherche/projets.html", {"projects": projects[::-1]}, actor=actor)


def _form_context(
    request: Request, values: dict[str, Any], errors: dict[str, str], error: str | None
) -> dict[str, Any]:
    population_budget = hub_of(request).settings.dp_population_budget
    return {
        "values": values,
        "chosen": set(as_list(values.get("colonnes"))),
        "sexes_chosen": set(as_list(values.get("sexes"))),
        "errors": errors,
        "error": error,
        "tables": catalogue.column_choices(),
        "table_labels": catalogue.TABLE_LABELS,
        "identifiers": catalogue.identifier_choices(),
        "purposes": catalogue.purposes(),
        "sexes": SEXES,
        "population_budget": f"{population_budget:g}",
    }


@router.get("/projets/nouveau", response_class=HTMLResponse)
def new_project_page(request: Request) -> HTMLResponse:
    actor = page_actor(request)
    require_role(actor, Role.RESEARCHER)
    defaults = {"duree": "365", "debut": "", "fin": "", "identifiant": ""}
    return render(request, "recherche/nouveau.html", _form_context(request, defaults, {}, None), actor=actor)


def _codes(text: str) -> list[str]:
    return [c.strip().upper() for c in text.replace(";", ",").split(",") if c.strip()]


def _request_from(form: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The API's project request from the form, or the errors per form field."""
    errors: dict[str, str] = {}
    text = {k: str(form.get(k, "")).strip() for k in ("titre", "organisme", "finalite", "justification", "resume")}
    for key, message in (
        ("titre", fr(N_("Give the project a title."))),
        ("organisme", fr(N_("Give the organisation responsible."))),
        ("finalite", fr(N_("Choose a purpose."))),
    ):
        if not text[key]:
            errors[key] = message
    for key in ("justification", "resume"):
        if len(text[key]) < 10:
            errors[key] = fr(N_("Explain in at least 10 characters."))
    tables: dict[str, list[str]] = {}
    for choice in as_list(form.get("colonnes")):
        table, _, column = choice.partition(".")
        tables.setdefault(table, []).append(column)
    if not tables:
        errors["colonnes"] = fr(N_("Tick at least one column."))
    population: dict[str, Any] = {"period_start": form.get("debut") or None, "period_end": form.get("fin") or None}
    if not population["period_start"]:
        errors["debut"] = fr(N_("Give the start of the period."))
    if not population["period_end"]:
        errors["fin"] = fr(N_("Give the end of the period."))
    for key, name in (("age_min", "age_min"), ("age_max", "age_max")):
        raw = str(form.get(key, "")).strip()
        if raw:
            if not raw.isdigit():
                errors[key] = fr(N_("An age in years, in digits."))
            else:
                population[name] = int(raw)
    population["sexes"] = [int(s) for s in as_list(form.get("sexes")) if s in SEXES]
    population["departements"] = _codes(str(form.get("departements", "")))
    population["drugs_atc"] = _codes(str(form.get("atc", "")))
    population["ccam_acts"] = _codes(str(form.get("ccam", "")))
    duration = str(form.get("duree", "")).strip()
    if not duration.isdigit() or int(duration) < 1:
        errors["duree"] = fr(N_("A duration in days, at least 1."))
    mode, budget = _release_from(form, errors)
    if errors:
        return None, errors
    identifier = str(form.get("identifiant", ""))
    return {
        "title": text["titre"],
        "organisation": text["organisme"],
        "purpose": text["finalite"],
        "justification": text["justification"],
        "public_summary": text["resume"],
        "scope": {
            "tables": tables,
            "population": population,
            "potential_identifiers": [identifier] if identifier else [],
        },
        "duration_days": int(duration),
        "release_mode": mode,
        "privacy_budget": budget,
    }, {}


def _release_from(form: dict[str, Any], errors: dict[str, str]) -> tuple[str, float | None]:
    """The release mode and privacy budget of the form (a French decimal comma accepted); errors added in place."""
    mode = "dp" if form.get("mode_publication") == "dp" else "sdc"
    raw = str(form.get("budget", "")).strip().replace(",", ".")
    if mode == "sdc":
        if raw:
            errors["budget"] = fr(N_("A privacy budget goes only with differential privacy."))
        return mode, None
    try:
        budget = float(raw)
    except ValueError:
        budget = math.nan
    if not math.isfinite(budget) or budget <= 0:
        errors["budget"] = fr(N_("Give a privacy budget: a positive number, for example 0.5."))
        return mode, None
    return mode, budget


@router.post("/projets/nouveau", response_class=HTMLResponse)
async def new_project(request: Request) -> Response:
    form, actor = await posted_by(request, Role.RESEARCHER)
    body, errors = _request_from(form)
    if body is None:
        return render(request, "recherche/nouveau.html",
                      _form_context(request, form, errors, FORM_ERRORS),
                      actor=actor, status=422)  # fmt: skip
    try:
        project_request = api.ProjectRequest(**body)
    except ValidationError as exc:
        for e in exc.errors(include_input=False, include_url=False):
            field = FIELD_NAMES.get(str(e["loc"][0]), "formulaire")
            errors[field] = validation_error(e)
        return render(request, "recherche/nouveau.html",
                      _form_context(request, form, errors, FORM_ERRORS),
                      actor=actor, status=422)  # fmt: skip
    hub = hub_of(request)
    submit = form.get("action") == "soumettre"

    def create() -> int:
        created = api.create_project(project_request, hub, actor)
        if submit:
            api.submit_project(created.id, hub, actor)
        return created.id

    try:
        project_id = await run_in_threadpool(create)
    except GovernanceError as exc:
        # The policy's own refusal (a gated column, two identifiers, a forbidden purpose…), shown above the form.
        refused = fr(N_("The request is refused: {reason}", reason=french(exc.status, exc.message)))
        return render(request, "recherche/nouveau.html", _form_context(request, form, {}, refused),
                      actor=actor, status=exc.status)  # fmt: skip
    return redirect(f"/recherche/projets/{project_id}?fait={'soumis' if submit else 'cree'}")


@router.get("/projets/{project_id}", response_class=HTMLResponse)
def project_page(request: Request, project_id: int, fait: str = "") -> HTMLResponse:
    actor = page_actor(request)
    require_role(actor, Role.RESEARCHER)
    hub = hub_of(request)
    project = api.get_project(project_id, hub, actor)
    view = api.describe_view(project_id, hub, actor) if project.status == "active" else None
    context = {"project": project, "view": view, "done": fait[:20], "purposes": catalogue.purposes(),
               "table_labels": catalogue.TABLE_LABELS}  # fmt: skip
    return render(request, "recherche/projet.html", context, actor=actor)


@router.post("/projets/{project_id}/soumettre", response_class=HTMLResponse)
async def submit_project(request: Request, project_id: int) -> Response:
    _, actor = await posted_by(request, Role.RESEARCHER)
    await run_in_threadpool(api.submit_project, project_id, hub_of(request), actor)
    return redirect(f"/recherche/projets/{project_id}?fait=soumis")
