# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A process's private Spark directory (driver log, spill files) does not outlive the process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_work_dir_is_removed_when_the_process_ends() -> None:
    script = (
        "from hygie.warehouse.spark import driver_log, work_dir\n"
        "d = work_dir()\n"
        "driver_log().write_text('spilled')\n"
        "(d / 'local').mkdir()\n"
        "(d / 'local' / 'block').write_bytes(b'x')\n"
        "print(d)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    made = Path(done.stdout.strip())
    assert made.name.startswith("hygie-spark-")
    assert not made.exists()
