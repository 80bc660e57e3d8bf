# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Reading a synthetic delivery back, and checking values the way a strict validator would.

Independent of hygie.synth's own code: the rules come from the Table Schemas and code lists in
hygie/reference/snds, read here from scratch.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path

REFERENCE = Path(__file__).resolve().parents[2] / "hygie" / "reference" / "snds"

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_YEARMONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_YEAR = re.compile(r"^\d{4}$")
_MONTH = re.compile(r"^(0[1-9]|1[0-2])$")
_INT = re.compile(r"^-?\d+$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


@cache
def code_list(name: str) -> frozenset[str]:
    base = REFERENCE / "nomenclatures" / name
    schema = json.loads(base.with_suffix(".json").read_text(encoding="utf-8"))
    column = next(f["name"] for f in schema["fields"] if f.get("role") == "code")
    with base.with_suffix(".csv").open(encoding="utf-8", newline="") as f:
        return frozenset(row[column] for row in csv.DictReader(f, delimiter=";"))


@cache
def schema_fields(table: str) -> dict[str, dict[str, object]]:
    schema = json.loads((REFERENCE / "schemas" / f"{table}.json").read_text(encoding="utf-8"))
    return {f["name"]: f for f in schema["fields"]}


def has_code_list(nomenclature: object) -> str | None:
    if not isinstance(nomenclature, str) or nomenclature in ("", "-"):
        return None
    name = nomenclature.split(":")[0].strip()
    return name if (REFERENCE / "nomenclatures" / f"{name}.csv").exists() else None


def check_value(table: str, column: str, value: str) -> str | None:
    """None when ``value`` is acceptable for the schema field, else the reason."""
    spec = schema_fields(table).get(column)
    if spec is None or value == "":
        return None
    kind = spec.get("type")
    fmt = spec.get("format", "default")
    length = str(spec.get("length", ""))
    cons = spec.get("constraints") or {}
    assert isinstance(cons, dict)
    if kind == "date" and fmt == "%m":
        if not _MONTH.match(value):
            return "month not MM"
    elif kind == "date":
        if not _DATE.match(value):
            return "date not YYYY-MM-DD"
        date.fromisoformat(value)
    elif kind == "yearmonth":
        if not _YEARMONTH.match(value):
            return "yearmonth not YYYY-MM"
    elif kind == "year":
        if not _YEAR.match(value):
            return "year not YYYY"
    elif kind == "integer":
        if not _INT.match(value):
            return "not an integer"
        if length.isdigit() and len(value.lstrip("-")) > int(length):
            return f"more than {length} digits"
    elif kind == "number":
        if not _NUMBER.match(value):
            return "not a number"
        if "," in length and "." in value and len(value.split(".")[1]) > int(length.split(",")[1]):
            return f"more decimals than {length}"
    elif kind == "string":
        if length.isdigit() and len(value) > int(length):
            return f"longer than {length}"
        if "minLength" in cons and len(value) < int(cons["minLength"]):
            return "shorter than minLength"
    if kind in ("integer", "number"):
        if "minimum" in cons and float(value) < float(cons["minimum"]):
            return "below minimum"
        if "maximum" in cons and float(value) > float(cons["maximum"]):
            return "above maximum"
    if "enum" in cons and value not in [str(v) for v in cons["enum"]]:
        return "not in enum"
    name = has_code_list(spec.get("nomenclature"))
    if name is not None and value not in code_list(name):
        return f"not in code list {name}"
    return None


@dataclass
class Delivery:
    root: Path
    manifests: dict[str, dict[str, object]] = field(default_factory=dict)
    headers: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    rows: dict[tuple[str, str], list[dict[str, str]]] = field(default_factory=dict)

    @classmethod
    def read(cls, root: Path) -> Delivery:
        d = cls(root)
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            d.manifests[folder.name] = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
            for csv_path in sorted(folder.glob("*.csv")):
                with csv_path.open(encoding="utf-8", newline="") as f:
                    reader = csv.reader(f)
                    header = next(reader)
                    d.headers[(folder.name, csv_path.stem)] = header
                    d.rows[(folder.name, csv_path.stem)] = [dict(zip(header, r, strict=True)) for r in reader]
        return d

    def table(self, name: str) -> list[dict[str, str]]:
        return [r for (_, t), rows in sorted(self.rows.items()) if t == name for r in rows]

    def batches(self) -> list[str]:
        return sorted(self.manifests)
