# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
from __future__ import annotations

from pathlib import Path

from hygie.hub import Hub
from hygie.ingest.pipeline import ingest_batch
from tests.delivery import small_delivery


def test_small_batch_is_accepted(hub: Hub, tmp_path: Path) -> None:
    folder = small_delivery().write(tmp_path / "b1", "B1")
    result = ingest_batch(hub, folder)
    assert result.errors == [], result.errors
    assert result.status == "accepted"
    assert result.rows == {"IR_BEN_R": 12, "ER_PRS_F": 13, "ER_BIO_F": 1}
