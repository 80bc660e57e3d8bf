# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The aggregate request form: what it offers (dimensions, measures, filters in French) and how its fields become
the API's :class:`AggregateSpec`, with an error next to the field it concerns."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from hygie.analysis.spec import AggregateSpec
from hygie.i18n import N_, Message
from hygie.portal.pages.messages import french
from hygie.portal.pages.web import as_list

DIMENSIONS: dict[str, str] = {
    "sex": "Sexe",
    "age_band": "Tranche d'âge",
    "age": "Âge (en années)",
    "region": "Région de résidence",
    "departement": "Département de résidence",
    "care_year": "Année des soins",
    "care_month": "Mois des soins",
    "act_nature": "Nature de la prestation (PRS_NAT_REF)",
    "provider": "Professionnel exécutant (PFS_EXE_NUM)",
    "atc": "Classe de médicament (préfixe ATC)",
    "ccam": "Famille d'actes (préfixe CCAM)",
}
"""Group-by dimensions, in the spec's names; filters use the same."""

FILTERS = 2
"""Filter rows the form offers; a spec may hold more, through the API."""

DEFAULT_WIDTH = {"age_band": "10", "atc": "3", "ccam": "4"}
WIDTH_FIELDS = {"age_band": "largeur-age_band", "atc": "longueur-atc", "ccam": "longueur-ccam"}
"""Dimensions with an argument (years per band, characters of the code kept) and the form field holding it."""

MEASURE_KINDS = {"sum": "Somme", "mean": "Moyenne", "quantile:0.5": "Médiane"}


def amount_columns(scope: dict[str, Any]) -> list[str]:
    """The project's amount columns (…_MNT), which sums, means and medians may take."""
    columns = {c for cols in scope.get("tables", {}).values() for c in cols if str(c).endswith("_MNT")}
    return sorted(columns)


def measure_choices(amounts: list[str]) -> list[tuple[str, str]]:
    """(spec short form, French label) of every measure the form offers."""
    out = [("people", "Nombre de personnes"), ("events", "Nombre de prestations")]
    for column in amounts:
        out += [("sum:" + column, f"Somme de {column}"), ("mean:" + column, f"Moyenne de {column}"),
                ("quantile:" + column + ":0.5", f"Médiane de {column}")]  # fmt: skip
    return out


def defaults() -> dict[str, Any]:
    values: dict[str, Any] = {"dimension": ["sex"], "mesure": ["people"], "totaux": ""}
    values.update({WIDTH_FIELDS[d]: v for d, v in DEFAULT_WIDTH.items()})
    for i in range(1, FILTERS + 1):
        values.update({f"filtre{i}": "", f"filtre{i}-codes": "", f"filtre{i}-de": "", f"filtre{i}-a": ""})
    return values


def _dimension(name: str, form: dict[str, Any], errors: dict[str, str]) -> str:
    """The spec's short form of a dimension ('age_band:10'), its argument read from the form."""
    field = WIDTH_FIELDS.get(name)
    if field is None:
        return name
    raw = str(form.get(field, "")).strip() or DEFAULT_WIDTH[name]
    if not raw.isdigit():
        errors[field] = "Un nombre entier."
        return name
    return f"{name}:{raw}"


def _codes(text: str) -> list[str]:
    return [c.strip() for c in text.replace(";", ",").split(",") if c.strip()]


def spec_from_form(form: dict[str, Any]) -> tuple[AggregateSpec | None, dict[str, str]]:
    """The spec the form describes, or the errors per form field (the spec's own checks included)."""
    errors: dict[str, str] = {}
    chosen = [d for d in as_list(form.get("dimension")) if d in DIMENSIONS]
    group_by = [_dimension(d, form, errors) for d in chosen]
    measures = as_list(form.get("mesure"))
    if not measures:
        errors["mesure"] = "Cochez au moins une mesure."
    filters: list[dict[str, Any]] = []
    for i in range(1, FILTERS + 1):
        name = str(form.get(f"filtre{i}", ""))
        codes = _codes(str(form.get(f"filtre{i}-codes", "")))
        low, high = (str(form.get(f"filtre{i}-{k}", "")).strip() for k in ("de", "a"))
        if not name:
            if codes or low or high:
                errors[f"filtre{i}"] = "Choisissez la dimension que ce filtre restreint."
            continue
        if name not in DIMENSIONS:
            errors[f"filtre{i}"] = "Une dimension de la liste."
            continue
        dimension = _dimension(name, form, errors)
        if codes and not (low or high):
            filters.append({"dimension": dimension, "in": codes})
        elif low and high and not codes:
            filters.append({"dimension": dimension, "between": [low, high]})
        else:
            errors[f"filtre{i}-codes"] = "Donnez soit des codes, soit un intervalle complet (de… à…), pas les deux."
    if errors:
        return None, errors
    body = {"group_by": group_by, "measures": measures, "filters": filters, "totals": form.get("totaux") == "oui"}
    try:
        return AggregateSpec.model_validate(body), {}
    except ValidationError as exc:
        for e in exc.errors(include_input=False, include_url=False):
            where = str(e["loc"][0]) if e["loc"] else ""
            field = {"group_by": "dimension", "measures": "mesure", "filters": "filtre1"}.get(where, "formulaire")
            errors.setdefault(field, french(422, _message(e)))
        return None, errors


def _message(error: Any) -> str:
    """A validation error as a message: the spec's own refusal (a catalogued message raised in a validator), or
    pydantic's "too long" said with its limit; pydantic's other wordings as they are."""
    context = error.get("ctx") or {}
    raised = context.get("error")
    if isinstance(raised, ValueError) and raised.args and isinstance(raised.args[0], Message):
        return raised.args[0]
    if error.get("type") == "too_long" and "max_length" in context:
        return N_("at most {count}", count=context["max_length"])
    return str(error["msg"]).removeprefix("Value error, ")
