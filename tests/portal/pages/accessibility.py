# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Deque's axe-core run on every page the journeys visit: the RGAA / WCAG 2.2 A and AA rules a machine can check.

``tests/portal/pages/axe-core/`` pins axe-core with npm (``package-lock.json``); :func:`axe_source` runs ``npm ci``
there on a clean clone, once, under a file lock (the suite runs in several pytest-xdist workers). The script is
evaluated through the DevTools protocol, so the portal's Content-Security-Policy stays as strict as in production
(no inline script is added to the page). Each page's full result goes to ``test-artifacts/axe/<page>.json``; a
serious or critical violation fails the journey with the rule, its help text and the offending elements.
"""

from __future__ import annotations

import fcntl
import functools
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

AXE_DIR = Path(__file__).resolve().parent / "axe-core"
AXE_SCRIPT = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
RESULTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "axe"
BLOCKING = frozenset({"serious", "critical"})
RULESETS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
"""WCAG 2.2 A/AA (what RGAA 4.1 maps to) and Deque's best practices (landmarks, headings, regions)."""


@functools.cache
def axe_source() -> str:
    if not AXE_SCRIPT.is_file():
        if shutil.which("npm") is None:
            pytest.fail("npm is needed to install axe-core for the accessibility checks: run scripts/test")
        with open(AXE_DIR / ".install.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not AXE_SCRIPT.is_file():
                done = subprocess.run(
                    ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                    cwd=AXE_DIR,
                    capture_output=True,
                    text=True,
                    timeout=300,
                    check=False,
                )
                if done.returncode != 0:
                    pytest.fail(f"npm ci of axe-core failed:\n{done.stderr[-2000:]}")
    return AXE_SCRIPT.read_text(encoding="utf-8")


def axe_results(page: Page) -> dict[str, Any]:
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(axe_source())
    results: dict[str, Any] = page.evaluate(
        """(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags},
                                       resultTypes: ['violations']})""",
        RULESETS,
    )
    return results


def check_axe(page: Page, name: str) -> None:
    """No serious or critical axe-core violation on the page; the full result kept for reading."""
    results = axe_results(page)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(
        json.dumps({"url": results.get("url"), "violations": results["violations"]}, indent=1, ensure_ascii=False),
        encoding="utf-8",
    )
    blocking = [v for v in results["violations"] if v.get("impact") in BLOCKING]
    assert not blocking, f"{name}: axe-core found serious/critical violations:\n" + "\n".join(
        f"- {v['id']} ({v['impact']}): {v['help']} — " + "; ".join(str(n["target"]) for n in v["nodes"][:5])
        for v in blocking
    )
