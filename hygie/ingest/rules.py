# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Field rules compiled from the SNDS Table Schemas and the delivery contract.

The SNDS descriptors carry a few non-standard keys (``length``, ``nomenclature``, constraints such as
``description``); they are set aside and the rest is read as the Table Schema specification defines it: a field's
``type`` is one of the specification's types, ``format`` defaults to ``default``, and each standard constraint has
the value type the specification gives it. A descriptor that breaks these rules stops the import with its table
and field named (the schemas ship with Hygie: such an error is a packaging fault, not bad input). Each delivered
column then gets one :class:`FieldRule` that the vectorised checks in :mod:`hygie.ingest.checks` apply.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

import pyarrow as pa

from hygie.ingest.contract import IDENTITY_COLUMNS, NIR_COLUMN, PSEUDONYM_COLUMN, TABLES

Kind = Literal["string", "integer", "number", "date", "yearmonth", "year", "month", "boolean", "nir"]

REFERENCE = Path(str(resources.files("hygie") / "reference"))
SCHEMAS = REFERENCE / "snds" / "schemas"
NOMENCLATURES = REFERENCE / "snds" / "nomenclatures"
DRUGS = REFERENCE / "drugs.csv"

_STANDARD_CONSTRAINTS = {
    "required",
    "unique",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "pattern",
    "enum",
}
_NOT_CHECKED_LISTS = {"IR_DTE_V"}
"""Date code lists: dates are checked as dates, not against a list."""

READ_TYPES: dict[str, pa.DataType] = {
    "integer": pa.int64(),
    "number": pa.float64(),
    "date": pa.date32(),
    "year": pa.int64(),
}
"""How the CSV reader types a column on the fast path; every other kind is read as text."""

STORED_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "nir": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "date": pa.date32(),
    "yearmonth": pa.string(),
    "year": pa.int32(),
    "month": pa.int32(),
    "boolean": pa.bool_(),
}


@dataclass(frozen=True)
class FieldRule:
    name: str
    kind: Kind
    required: bool = False
    max_length: int | None = None
    """Characters for text, digits for integers."""
    min_length: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[str, ...] | None = None
    pattern: str | None = None
    pattern_hint: str | None = None
    code_list: str | None = None
    identity: bool = False

    @property
    def read_type(self) -> pa.DataType:
        return READ_TYPES.get(self.kind, pa.string())


_TEXT = r"^[^\x00-\x1f\x7f]*$"
_TEXT_HINT = "text without control characters"
_IDENTITY_RULES = {
    "NOM": FieldRule(
        "NOM", "string", required=True, max_length=100, pattern=_TEXT, pattern_hint=_TEXT_HINT, identity=True
    ),
    "PRENOM": FieldRule(
        "PRENOM", "string", required=True, max_length=100, pattern=_TEXT, pattern_hint=_TEXT_HINT, identity=True
    ),
    "DATE_NAISSANCE": FieldRule("DATE_NAISSANCE", "date", required=True, identity=True),
    "ADRESSE": FieldRule("ADRESSE", "string", max_length=200, pattern=_TEXT, pattern_hint=_TEXT_HINT, identity=True),
    "CODE_POSTAL": FieldRule("CODE_POSTAL", "string", pattern=r"^[0-9]{5}$", pattern_hint="five digits", identity=True),
    "COMMUNE": FieldRule("COMMUNE", "string", max_length=100, pattern=_TEXT, pattern_hint=_TEXT_HINT, identity=True),
    "TELEPHONE": FieldRule(
        "TELEPHONE",
        "string",
        pattern=r"^\+?[0-9][0-9 ().-]{5,24}$",
        pattern_hint="a telephone number (digits, spaces, + ( ) . -)",
        identity=True,
    ),
    "EMAIL": FieldRule(
        "EMAIL",
        "string",
        max_length=254,
        pattern=r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$",
        pattern_hint="an e-mail address",
        identity=True,
    ),
}


_TABLE_SCHEMA_TYPES = {
    "string", "number", "integer", "boolean", "object", "array", "date", "time", "datetime", "year", "yearmonth",
    "duration", "geopoint", "geojson", "any",
}  # fmt: skip
"""The field types of the Table Schema specification (v1)."""

_CONSTRAINT_TYPES: dict[str, tuple[type, ...]] = {
    "required": (bool,),
    "unique": (bool,),
    "minLength": (int,),
    "maxLength": (int,),
    "minimum": (int, float),
    "maximum": (int, float),
    "pattern": (str,),
    "enum": (list,),
}
"""The value type of each standard constraint this module reads (Table Schema v1, section "Constraints")."""


@dataclass(frozen=True)
class SchemaField:
    """One Table Schema field as the specification defines it, non-standard keys set aside."""

    name: str
    type: str
    format: str
    constraints: dict[str, object]


def _schema_field(table: str, raw: dict[str, object]) -> SchemaField:
    name, ftype, fmt = raw.get("name"), raw.get("type", "string"), raw.get("format", "default")
    where = f"Table Schema {table}.json, field {name!r}"
    if not isinstance(name, str) or not name:
        raise ValueError(f"Table Schema {table}.json: a field has no name")
    if ftype not in _TABLE_SCHEMA_TYPES:
        raise ValueError(f"{where}: type {ftype!r} is not a Table Schema type")
    if not isinstance(fmt, str):
        raise ValueError(f"{where}: format must be a string")
    given = raw.get("constraints", {})
    if not isinstance(given, dict):
        raise ValueError(f"{where}: constraints must be an object")
    constraints: dict[str, object] = {}
    for key, value in given.items():
        if key not in _CONSTRAINT_TYPES:
            continue  # non-standard (e.g. a free-text description): set aside
        # bool is an int in Python: a boolean is not a length or a bound.
        if not isinstance(value, _CONSTRAINT_TYPES[key]) or (
            isinstance(value, bool) and bool not in _CONSTRAINT_TYPES[key]
        ):
            raise ValueError(f"{where}: constraint {key} has a {type(value).__name__} value")
        constraints[key] = value
    return SchemaField(name, str(ftype), fmt, constraints)


@cache
def _snds_fields(table: str) -> dict[str, tuple[SchemaField, dict[str, object]]]:
    raw = json.loads((SCHEMAS / f"{table}.json").read_text(encoding="utf-8"))
    return {f["name"]: (_schema_field(table, f), f) for f in raw["fields"]}


def _code_list_name(nomenclature: object) -> str | None:
    if not isinstance(nomenclature, str) or nomenclature in {"", "-"}:
        return None
    name = nomenclature.split(":")[0].strip()
    if name in _NOT_CHECKED_LISTS:
        return None
    if name == "IR_PHA_R" and DRUGS.exists():
        return name
    return name if (NOMENCLATURES / f"{name}.csv").exists() else None


def _rule_from_snds(table: str, name: str, required: bool) -> FieldRule:
    field, extra = _snds_fields(table)[name]
    ftype, fmt, constraints = field.type, field.format, field.constraints
    kind: Kind
    if ftype == "date" and fmt == "%m":
        kind = "month"
    elif ftype in {"string", "integer", "number", "date", "yearmonth", "year", "boolean"}:
        kind = ftype  # type: ignore[assignment]
    else:
        raise ValueError(f"{table}.{name}: unsupported Table Schema type {ftype!r}")
    length = extra.get("length")
    max_length = None
    if kind in {"string", "integer"} and isinstance(length, int | str) and str(length).isdigit():
        max_length = int(length)
    enum = constraints.get("enum")
    return FieldRule(
        name=name,
        kind=kind,
        required=required or bool(constraints.get("required")),
        max_length=int(constraints["maxLength"]) if "maxLength" in constraints else max_length,  # type: ignore[call-overload]
        min_length=int(constraints["minLength"]) if "minLength" in constraints else None,  # type: ignore[call-overload]
        minimum=float(constraints["minimum"]) if "minimum" in constraints else None,  # type: ignore[arg-type]
        maximum=float(constraints["maximum"]) if "maximum" in constraints else None,  # type: ignore[arg-type]
        enum=tuple(str(e) for e in enum) if isinstance(enum, list) else None,
        code_list=_code_list_name(extra.get("nomenclature")),
    )


@cache
def rules(table: str) -> dict[str, FieldRule]:
    """The rule of every column a delivery of ``table`` may carry, by delivered column name."""
    contract = TABLES[table]
    out: dict[str, FieldRule] = {}
    for name in contract.columns:
        required = name in contract.required
        if name == NIR_COLUMN:
            out[name] = FieldRule(name, "nir", required=True, max_length=15, min_length=15)
        elif name in IDENTITY_COLUMNS:
            base = _IDENTITY_RULES[name]
            out[name] = FieldRule(**{**base.__dict__, "required": base.required or required})
        else:
            out[name] = _rule_from_snds(table, name, required)
    return out


@cache
def stored_schema(table: str) -> pa.Schema:
    """The Arrow schema of the warehouse table (pseudonym instead of NIR, no identity columns)."""
    fields = []
    for name, rule in rules(table).items():
        if rule.identity:
            continue
        if rule.kind == "nir":
            fields.append(pa.field(PSEUDONYM_COLUMN, pa.string(), nullable=False))
        else:
            fields.append(pa.field(name, STORED_TYPES[rule.kind]))
    return pa.schema(fields)


@cache
def code_values(list_name: str, kind: Kind) -> pa.Array:
    """The codes of a code list, typed like the field that names it."""
    if list_name == "IR_PHA_R":
        with DRUGS.open(encoding="utf-8") as f:
            rows = csv.DictReader(line for line in f if not line.startswith("#"))
            codes = [r["PHA_PRS_C13"] for r in rows]
    else:
        meta = json.loads((NOMENCLATURES / f"{list_name}.json").read_text(encoding="utf-8"))
        code_fields = [f["name"] for f in meta["fields"] if f.get("role") == "code"]
        column = code_fields[0] if code_fields else meta["fields"][0]["name"]
        with (NOMENCLATURES / f"{list_name}.csv").open(encoding="utf-8") as f:
            codes = [row[column].strip() for row in csv.DictReader(f, delimiter=";")]
    values = sorted({c for c in codes if c})
    if kind in {"integer", "year"}:
        return pa.array(sorted({int(c) for c in values if c.lstrip("-").isdigit()}), pa.int64())
    return pa.array(values, pa.string())
