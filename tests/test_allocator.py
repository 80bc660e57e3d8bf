# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Arrow's allocator is set up by importing Hygie, before pyarrow loads (mimalloc reads its options once)."""

from __future__ import annotations

import os
import subprocess
import sys

LOAD = "import hygie.ingest.pipeline, pyarrow as pa; pa.array([1, 2, 3])"


def _options(env: dict[str, str]) -> str:
    # mimalloc prints its options at start-up when verbose: the only way to see what it read.
    base = {k: v for k, v in os.environ.items() if not k.startswith("MIMALLOC_")}
    done = subprocess.run(
        [sys.executable, "-c", LOAD], env=base | {"MIMALLOC_VERBOSE": "1"} | env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_freed_arrow_memory_is_handed_back_lazily() -> None:
    shown = _options({})
    assert "option 'purge_decommits': 0" in shown
    assert "option 'allow_thp': 1" in shown  # huge pages stay: the analyses' scans of views in memory need them


def test_an_operators_choice_is_kept() -> None:
    assert "option 'purge_decommits': 1" in _options({"MIMALLOC_PURGE_DECOMMITS": "1"})
