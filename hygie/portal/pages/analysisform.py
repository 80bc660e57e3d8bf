# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The aggregate request form: what it offers (dimensions, measures, filters in French) and how its fields become
the API's :class:`AggregateSpec`, with an error next to the field it concerns."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from hygie.analysis.spec import AggregateSpec
from hygie.i18n import N_
from hygie.portal.pages.messages import fr, validation_error
from hygie.portal.pages.web import as_list

DIMENSIONS: dict[str, str] = {
    "sex": fr(N_("Sex")),
    "age_band": fr(N_("Age band")),
    "age": fr(N_("Age (in years)")),
    "region": fr(N_("Region of residence")),
    "departement": fr(N_("Département of residence")),
    "care_year": fr(N_("Year of care")),
    "care_month": fr(N_("Month of care")),
    "act_nature": fr(N_("Nature of the service (PRS_NAT_REF)")),
    "provider": fr(N_("Professional who performed it (PFS_EXE_NUM)")),
    "atc": fr(N_("Drug class (ATC prefix)")),
    "ccam": fr(N_("Family of procedures (CCAM prefix)")),
}
"""Group-by dimensions, in the spec's names; filters use the same."""

FILTERS = 2
"""Filter rows the form offers; a spec may hold more, through the API."""

DEFAULT_WIDTH = {"age_band": "10", "atc": "3", "ccam": "4"}
WIDTH_FIELDS = {"age_band": "largeur-age_band", "atc": "longueur-atc", "ccam": "longueur-ccam"}
"""Dimensions with an argument (years per band, characters of the code kept) and the form field holding it."""

MEASURE_KINDS = {"sum": fr(N_("Sum")), "mean": fr(N_("Mean")), "quantile:0.5": fr(N_("Median"))}


def amount_columns(scope: dict[str, Any]) -> list[str]:
    """The project's amount columns (…_MNT), which sums, means and medians may take."""
    columns = {c for cols in scope.get("tables", {}).values() for c in cols if str(c).endswith("_MNT")}
    return sorted(columns)


def measure_choices(amounts: list[str]) -> list[tuple[str, str]]:
    """(spec short form, French label) of every measure the form offers."""
    out = [("people", fr(N_("Number of people"))), ("events", fr(N_("Number of services")))]
    for column in amounts:
        out += [("sum:" + column, fr(N_("Sum of {column}", column=column))),
                ("mean:" + column, fr(N_("Mean of {column}", column=column))),
                ("quantile:" + column + ":0.5", fr(N_("Median of {column}", column=column)))]  # fmt: skip
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
        errors[field] = fr(N_("A whole number."))
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
        errors["mesure"] = fr(N_("Tick at least one measure."))
    filters: list[dict[str, Any]] = []
    for i in range(1, FILTERS + 1):
        name = str(form.get(f"filtre{i}", ""))
        codes = _codes(str(form.get(f"filtre{i}-codes", "")))
        low, high = (str(form.get(f"filtre{i}-{k}", "")).strip() for k in ("de", "a"))
        if not name:
            if codes or low or high:
                errors[f"filtre{i}"] = fr(N_("Choose the dimension this filter restricts."))
            continue
        if name not in DIMENSIONS:
            errors[f"filtre{i}"] = fr(N_("A dimension from the list."))
            continue
        dimension = _dimension(name, form, errors)
        if codes and not (low or high):
            filters.append({"dimension": dimension, "in": codes})
        elif low and high and not codes:
            filters.append({"dimension": dimension, "between": [low, high]})
        else:
            errors[f"filtre{i}-codes"] = fr(N_("Give either codes or a whole range (from… to…), not both."))
    if errors:
        return None, errors
    body = {"group_by": group_by, "measures": measures, "filters": filters, "totals": form.get("totaux") == "oui"}
    try:
        return AggregateSpec.model_validate(body), {}
    except ValidationError as exc:
        for e in exc.errors(include_input=False, include_url=False):
            where = str(e["loc"][0]) if e["loc"] else ""
            field = {"group_by": "dimension", "measures": "mesure", "filters": "filtre1"}.get(where, "formulaire")
            errors.setdefault(field, validation_error(e))
        return None, errors
