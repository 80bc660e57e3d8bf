# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A delivered file's checksum and data-line count, read once in blocks, whatever falls on a block's edge."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hygie.ingest import pipeline


@pytest.mark.parametrize("block", [1, 3, 64])
@given(content=st.lists(st.sampled_from([b"a", b",", b"\n", b"\xc3"]), max_size=200).map(b"".join))
def test_checksum_and_lines_are_those_of_the_whole_file(block: int, content: bytes) -> None:
    lines = content.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # a final line end closes the last line, it does not open another
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ER_PRS_F.csv"
        path.write_bytes(content)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(pipeline, "_DIGEST_BLOCK_BYTES", block)
            found = pipeline._digest_and_lines(path)
    assert found == (hashlib.sha256(content).hexdigest(), max(0, len(lines) - 1))
