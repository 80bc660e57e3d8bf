# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The SNDS Table Schemas are read as the specification defines them, without a schema library."""

from __future__ import annotations

import pytest

from hygie.ingest.contract import TABLES
from hygie.ingest.rules import _schema_field, rules


def test_every_delivered_column_has_a_rule() -> None:
    for table, contract in TABLES.items():
        assert set(rules(table)) == set(contract.columns), table


def test_non_standard_constraints_are_set_aside() -> None:
    field = _schema_field("T", {"name": "A", "type": "integer", "constraints": {"description": "x", "minimum": 0}})
    assert field.constraints == {"minimum": 0}
    assert field.format == "default"


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        ({"name": "A", "type": "int"}, "type 'int' is not a Table Schema type"),
        ({"name": "A", "type": "string", "constraints": {"maxLength": "10"}}, "constraint maxLength has a str value"),
        ({"name": "A", "type": "integer", "constraints": {"minimum": True}}, "constraint minimum has a bool value"),
        ({"name": "A", "type": "string", "constraints": {"required": "yes"}}, "constraint required has a str value"),
        ({"name": "A", "type": "string", "constraints": []}, "constraints must be an object"),
        ({"type": "string"}, "a field has no name"),
    ],
)
def test_a_descriptor_outside_the_specification_is_refused_with_table_and_field(
    raw: dict[str, object], said: str
) -> None:
    with pytest.raises(ValueError, match=said) as caught:
        _schema_field("ER_PRS_F", raw)
    assert "ER_PRS_F.json" in str(caught.value)
