# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The order in which the two test workers take modules: longest first.

pytest-xdist hands out scopes (here: modules, and every Spark module as one) in order of their number of tests, so
modules with few but long tests (the demo, the deployment, the browser journeys) came last, and one worker often ran
the last of them alone while the other had finished. Handing out the longest first, as measured in a recorded run,
ends both workers within a few seconds of each other.

To refresh the measures (after modules are added, moved or made much longer or shorter)::

    uv run pytest -n 2 --dist loadscope --junitxml=/tmp/run.xml
    uv run python -m tests.scheduling /tmp/run.xml
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DURATIONS = Path(__file__).with_name("durations.json")
"""Seconds per test module in a recorded run (relative weights: the machine's load scales them all)."""

UNKNOWN_TEST_SECONDS = 1.0
"""The estimate for each test of a module not in the record (a new one)."""


def recorded() -> dict[str, float]:
    try:
        values: dict[str, float] = json.loads(DURATIONS.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return values


def estimate(nodeids: Iterable[str], seconds: dict[str, float]) -> float:
    """The expected seconds of a scope: its modules' recorded times, or a second per test for those not recorded."""
    counts = Counter(nodeid.split("::", 1)[0] for nodeid in nodeids)
    return sum(seconds.get(module, UNKNOWN_TEST_SECONDS * n) for module, n in counts.items())


def from_junit(report: Path) -> dict[str, float]:
    """Seconds per module path from a JUnit XML report (its test cases' times: setup, call and teardown)."""
    totals: Counter[str] = Counter()
    for case in ET.parse(report).iter("testcase"):
        classname = case.get("classname") or ""
        parts = classname.split(".")
        # classname is the module's dotted path, followed by a class name for tests in a class.
        while parts and not ROOT.joinpath(*parts).with_suffix(".py").is_file():
            parts.pop()
        if parts:
            totals["/".join(parts) + ".py"] += float(case.get("time") or 0)
    return {module: round(total, 1) for module, total in sorted(totals.items())}


if __name__ == "__main__":
    DURATIONS.write_text(json.dumps(from_junit(Path(sys.argv[1])), indent=1) + "\n", encoding="utf-8")
