# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Property-based tests of the delivery parser: one cell of a clean delivery replaced by arbitrary text."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hygie.config import Settings
from hygie.hub import Hub
from hygie.ingest.pipeline import ingest_batch
from hygie.warehouse.stats import collect
from tests.conftest import make_settings
from tests.delivery import small_delivery

COLUMNS = ["PRS_PAI_MNT", "EXE_SOI_DTD", "PSE_SPE_COD", "EXE_SOI_AMD", "PFS_EXE_NUM", "RGO_REM_TAU", "BEN_NAI_ANN"]
cells = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), max_size=12)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(tmp_path_factory.mktemp("prop") / "hub")


@pytest.fixture(scope="module")
def refusing_hub(scratch: Settings) -> Iterator[Hub]:
    hub = Hub.init(scratch)
    yield hub
    hub.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(row=st.integers(0, 12), column=st.sampled_from(COLUMNS), value=cells)
def test_one_bad_cell_is_named_exactly_and_never_echoed(
    scratch: Settings, tmp_path_factory: pytest.TempPathFactory, row: int, column: str, value: str
) -> None:
    d = small_delivery()
    d.rows["ER_PRS_F"][row][column] = value
    folder = d.write(tmp_path_factory.mktemp("batch"), "P")
    hub = Hub.init(scratch.model_copy(update={"data_dir": tmp_path_factory.mktemp("hub")}))
    try:
        result = ingest_batch(hub, folder)
        if result.status == "rejected":
            assert result.errors
            for e in result.errors:
                assert e.file == "ER_PRS_F.csv" and e.line == row + 2, e
                if len(value.strip()) >= 3:
                    assert value.strip() not in e.reason
            assert collect(hub)["batches"] == 0
        else:
            assert result.status == "accepted"
            assert collect(hub)["tables"]["ER_PRS_F"] == 13
    finally:
        hub.close()


ACCEPTED_INTEGER = r"[ \t]*-?[0-9]+[ \t]*"
"""What an integer field accepts: digits, with spaces or tabs around (as the typed reader reads them)."""


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(row=st.integers(0, 12), value=cells.filter(lambda v: v != "" and not re.fullmatch(ACCEPTED_INTEGER, v)))
def test_non_integer_in_an_integer_field_is_always_refused(
    refusing_hub: Hub, tmp_path_factory: pytest.TempPathFactory, row: int, value: str
) -> None:
    d = small_delivery()
    d.rows["ER_PRS_F"][row]["PSE_SPE_COD"] = value
    # Every example is refused, so they share one hub: each refusal must leave it as empty as it found it.
    result = ingest_batch(refusing_hub, d.write(tmp_path_factory.mktemp("batch"), "P"))
    assert result.status == "rejected"
    assert [(e.line, e.field) for e in result.errors] == [(row + 2, "PSE_SPE_COD")]
    assert collect(refusing_hub)["batches"] == 0


@pytest.mark.parametrize("value", ["\x0b0", "0\x0c", "\xa012"])
def test_a_number_padded_with_other_spaces_is_named_by_line_and_field(
    refusing_hub: Hub, tmp_path_factory: pytest.TempPathFactory, value: str
) -> None:
    """The typed reader refuses them; the exact re-read must refuse them too, and say where (it trimmed every Unicode
    space, found a number, and the batch was refused as "could not be read as CSV", naming nothing)."""
    d = small_delivery()
    d.rows["ER_PRS_F"][4]["PSE_SPE_COD"] = value
    result = ingest_batch(refusing_hub, d.write(tmp_path_factory.mktemp("batch"), "P"))
    assert [(e.line, e.field) for e in result.errors] == [(6, "PSE_SPE_COD")]
    assert collect(refusing_hub)["batches"] == 0


@pytest.mark.parametrize("value", ["0x1F", "0X1f", " 0x10\t"])
def test_a_hexadecimal_integer_is_refused_by_line_and_field(
    refusing_hub: Hub, tmp_path_factory: pytest.TempPathFactory, value: str
) -> None:
    """pyarrow's typed reader reads ``0x1F`` in an integer field as 31: the batch was accepted with the value
    changed. The fast path now looks for them and the exact re-read names them."""
    d = small_delivery()
    d.rows["ER_PRS_F"][4]["PSE_SPE_COD"] = value
    result = ingest_batch(refusing_hub, d.write(tmp_path_factory.mktemp("batch"), "P"))
    assert result.status == "rejected"
    assert [(e.line, e.field) for e in result.errors] == [(6, "PSE_SPE_COD")]
    assert collect(refusing_hub)["batches"] == 0


def test_a_hexadecimal_looking_text_is_still_accepted(
    scratch: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``0x`` in a text field (here a provider number) is no integer: the check for hexadecimal integers must not
    send a valid delivery to the exact re-read, which would refuse it as unreadable."""
    d = small_delivery()
    d.rows["ER_PRS_F"][4]["PFS_EXE_NUM"] = "0x1F00000"
    hub = Hub.init(scratch.model_copy(update={"data_dir": tmp_path_factory.mktemp("hub")}))
    try:
        result = ingest_batch(hub, d.write(tmp_path_factory.mktemp("batch"), "P"))
        assert result.status == "accepted", result.errors
    finally:
        hub.close()
