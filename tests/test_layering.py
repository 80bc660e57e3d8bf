# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Two layering rules, read from the source (imports inside functions count; those under ``if TYPE_CHECKING:`` do
not run and do not): the audit layer is cross-cutting and imports nothing of governance (its alerts read what the
events state), and no module imports the command line (the sub-CLIs share hygie/console.py, so no import circle)."""

from __future__ import annotations

import ast
from pathlib import Path

HYGIE = Path(__file__).resolve().parents[1] / "hygie"


def imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    guarded = [n for n in ast.walk(tree) if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]
    skip = {id(n) for g in guarded for n in ast.walk(g)}
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_audit_imports_nothing_of_governance() -> None:
    offenders = {
        str(path.relative_to(HYGIE)): sorted(n for n in imported(path) if n.startswith("hygie.governance"))
        for path in (HYGIE / "audit").rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_no_module_imports_the_command_line() -> None:
    offenders = [
        str(path.relative_to(HYGIE)) for path in HYGIE.rglob("*.py")
        if path.name != "cli.py" or path.parent != HYGIE
        if any(n == "hygie.cli" or n.startswith("hygie.cli.") for n in imported(path))
    ]  # fmt: skip
    assert offenders == []
