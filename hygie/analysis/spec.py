# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Aggregate requests: a declarative JSON spec and a small Python builder for it.

A spec names population filters, group-by dimensions and measures; the platform compiles it to SQL (see
``compile``), computes the people behind every cell itself and passes the table through disclosure control::

    {"group_by": ["sex", "age_band:10", "region"],
     "filters": [{"dimension": "care_month", "between": ["2024-01", "2024-06"]}],
     "measures": ["people", "events", "sum:PRS_PAI_MNT", "mean:PRS_PAI_MNT", "quantile:PRS_PAI_MNT:0.5"],
     "totals": true}

Dimensions: ``sex``, ``age`` and ``age_band[:width]`` (age in the project's first year), ``departement`` and
``region`` of residence (person-level: one code per person), ``care_month``, ``care_year``, ``act_nature``
(PRS_NAT_REF), ``provider`` (PFS_EXE_NUM), ``atc[:length]`` (drug class, an ATC prefix through the drug
referential) and ``ccam[:length]`` (CCAM act family). No minimum or maximum exists: they describe one person.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hygie.i18n import N_

DimensionName = Literal[
    "sex", "age", "age_band", "departement", "region", "care_month", "care_year", "act_nature", "provider", "atc",
    "ccam",
]  # fmt: skip
PERSON_LEVEL = frozenset({"sex", "age", "age_band", "departement", "region"})
"""Dimensions on which every person has exactly one code, so margins are sums of their cells."""
MAX_DIMENSIONS = 4
MAX_DIMENSIONS_WITH_TOTALS = 3


class DimensionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: DimensionName
    width: int | None = Field(default=None, ge=5, le=50, description="age_band: years per band (default 10).")
    length: int | None = Field(default=None, ge=1, le=7, description="atc, ccam: characters of the code kept.")

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        """'age_band:5' or 'atc:3' as a string."""
        if isinstance(value, str):
            name, _, arg = value.partition(":")
            out: dict[str, Any] = {"name": name}
            if arg:
                out["width" if name == "age_band" else "length"] = int(arg)
            return out
        return value

    @model_validator(mode="after")
    def _arguments(self) -> Self:
        if self.width is not None and self.name != "age_band":
            raise ValueError(N_("width applies to age_band, not {dimension}", dimension=self.name))
        if self.length is not None and self.name not in ("atc", "ccam"):
            raise ValueError(N_("length applies to atc and ccam, not {dimension}", dimension=self.name))
        return self

    @property
    def label(self) -> str:
        """The output column's name."""
        if self.name == "age_band":
            return f"age_band_{self.band}"
        if self.name in ("atc", "ccam"):
            return f"{self.name}_{self.code_length}"
        return self.name

    @property
    def band(self) -> int:
        return self.width or 10

    @property
    def code_length(self) -> int:
        return self.length or (3 if self.name == "atc" else 4)


class FilterSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    dimension: DimensionSpec
    in_: list[str | int] | None = Field(default=None, alias="in", min_length=1, max_length=1000)
    between: tuple[str | int, str | int] | None = None

    @model_validator(mode="after")
    def _one_test(self) -> Self:
        if (self.in_ is None) == (self.between is None):
            raise ValueError(N_("a filter has exactly one of 'in' (codes) or 'between' ([low, high], inclusive)"))
        return self


class MeasureSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["people", "events", "sum", "mean", "quantile"]
    of: str | None = Field(default=None, pattern=r"^[A-Z][A-Z0-9_]{1,30}$", description="Amount column.")
    q: float | None = Field(default=None, gt=0, lt=1, description="quantile: the probability, e.g. 0.5.")

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        """'people', 'sum:PRS_PAI_MNT', 'quantile:PRS_PAI_MNT:0.5' as a string."""
        if isinstance(value, str):
            parts = value.split(":")
            out: dict[str, Any] = {"kind": parts[0]}
            if len(parts) > 1:
                out["of"] = parts[1]
            if len(parts) > 2:
                out["q"] = float(parts[2])
            return out
        return value

    @model_validator(mode="after")
    def _arguments(self) -> Self:
        if self.kind in ("sum", "mean", "quantile") and self.of is None:
            raise ValueError(N_("a {kind} measure needs 'of': the amount column", kind=self.kind))
        if self.kind in ("people", "events") and self.of is not None:
            raise ValueError(N_("a {kind} measure takes no column", kind=self.kind))
        if (self.kind == "quantile") != (self.q is not None):
            raise ValueError(N_("'q' is for quantile measures, and they need it"))
        return self

    @property
    def name(self) -> str:
        if self.kind == "quantile":
            assert self.q is not None
            return f"p{round(self.q * 100):02d}_{self.of}"
        return self.kind if self.of is None else f"{self.kind}_{self.of}"


class AggregateSpec(BaseModel):
    """What to count, by what, over whom."""

    model_config = ConfigDict(extra="forbid")
    group_by: list[DimensionSpec] = Field(default_factory=list, max_length=MAX_DIMENSIONS)
    filters: list[FilterSpec] = Field(default_factory=list, max_length=20)
    measures: list[MeasureSpec] = Field(default_factory=lambda: [MeasureSpec(kind="people")], min_length=1)
    totals: bool = Field(default=False, description="Publish margins (a 'Total' code on every dimension).")

    @field_validator("group_by")
    @classmethod
    def _distinct_dimensions(cls, value: list[DimensionSpec]) -> list[DimensionSpec]:
        labels = [d.label for d in value]
        if len(set(labels)) != len(labels):
            raise ValueError(N_("each dimension appears once in group_by"))
        return value

    @field_validator("measures")
    @classmethod
    def _distinct_measures(cls, value: list[MeasureSpec]) -> list[MeasureSpec]:
        names = [m.name for m in value]
        if len(set(names)) != len(names):
            raise ValueError(N_("each measure appears once"))
        return value

    @model_validator(mode="after")
    def _totals(self) -> Self:
        if self.totals and len(self.group_by) > MAX_DIMENSIONS_WITH_TOTALS:
            raise ValueError(N_("with totals, at most {count} dimensions", count=MAX_DIMENSIONS_WITH_TOTALS))
        return self


class Aggregate:
    """A fluent builder: ``Aggregate().by("sex").by("age_band", width=10).people().sum("PRS_PAI_MNT").spec()``."""

    def __init__(self) -> None:
        self._group_by: list[DimensionSpec] = []
        self._filters: list[FilterSpec] = []
        self._measures: list[MeasureSpec] = []
        self._totals = False

    def by(self, name: str, *, width: int | None = None, length: int | None = None) -> Aggregate:
        self._group_by.append(DimensionSpec.model_validate({"name": name, "width": width, "length": length}))
        return self

    def where(
        self,
        name: str,
        *,
        in_: list[str | int] | None = None,
        between: tuple[str | int, str | int] | None = None,
        width: int | None = None,
        length: int | None = None,
    ) -> Aggregate:
        dimension = {"name": name, "width": width, "length": length}
        self._filters.append(FilterSpec.model_validate({"dimension": dimension, "in": in_, "between": between}))
        return self

    def people(self) -> Aggregate:
        return self._measure("people")

    def events(self) -> Aggregate:
        return self._measure("events")

    def sum(self, column: str) -> Aggregate:
        return self._measure("sum", column)

    def mean(self, column: str) -> Aggregate:
        return self._measure("mean", column)

    def quantile(self, column: str, q: float) -> Aggregate:
        return self._measure("quantile", column, q)

    def with_totals(self) -> Aggregate:
        self._totals = True
        return self

    def _measure(self, kind: str, of: str | None = None, q: float | None = None) -> Aggregate:
        self._measures.append(MeasureSpec.model_validate({"kind": kind, "of": of, "q": q}))
        return self

    def spec(self) -> AggregateSpec:
        return AggregateSpec(
            group_by=self._group_by,
            filters=self._filters,
            measures=self._measures or [MeasureSpec(kind="people")],
            totals=self._totals,
        )
