# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The test workers' order of modules (tests/scheduling.py)."""

from __future__ import annotations

from pathlib import Path

from tests import scheduling


def test_a_scope_is_estimated_from_its_modules_record_or_by_its_tests() -> None:
    seconds = {"tests/a.py": 30.0}
    nodeids = ["tests/a.py::t1", "tests/a.py::t2", "tests/new.py::t1", "tests/new.py::t2[x]", "tests/new.py::t3"]
    assert scheduling.estimate(nodeids, seconds) == 30.0 + 3 * scheduling.UNKNOWN_TEST_SECONDS


def test_the_record_names_existing_modules_and_holds_the_longest() -> None:
    seconds = scheduling.recorded()
    assert seconds, "tests/durations.json is missing or unreadable"
    root = Path(__file__).resolve().parents[1]
    assert all((root / module).is_file() for module in seconds), "a recorded module no longer exists: refresh"
    assert "tests/test_demo.py" in seconds and "tests/portal/test_authorization_matrix.py" in seconds


def test_times_are_summed_per_module_from_a_junit_report(tmp_path: Path) -> None:
    report = tmp_path / "run.xml"
    report.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.test_demo" name="a" time="1.5"/>'
        '<testcase classname="tests.test_demo" name="b" time="2.0"/>'
        '<testcase classname="tests.portal.test_authorization_matrix.TestRoutes" name="c" time="4.25"/>'
        "</testsuite></testsuites>",
        encoding="utf-8",
    )
    assert scheduling.from_junit(report) == {
        "tests/portal/test_authorization_matrix.py": 4.2,
        "tests/test_demo.py": 3.5,
    }
