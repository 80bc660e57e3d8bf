# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""THIRD_PARTY_NOTICES.md says every source file of Hygie's own carries the MPL-2.0 notice: hold it to that."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_source_file_carries_the_notice() -> None:
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "licence-headers"), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_check_finds_a_file_without_it(tmp_path: Path) -> None:
    bare = tmp_path / "probe.py"
    bare.write_text('"""A module without the notice."""\n', encoding="utf-8")
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "licence-headers"), "--check", str(bare)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 1
    assert f"{bare}: no MPL-2.0 notice" in check.stdout
