# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Fail points: named places where a test can have the process killed outright (SIGKILL).

Set ``HYGIE_FAILPOINT=<name>`` in a child process's environment; the process dies at that point with no
chance to clean up, exactly like ``kill -9``. Unset (always, in production), a fail point costs one lookup.
"""

from __future__ import annotations

import os
import signal


def point(name: str) -> None:
    if os.environ.get("HYGIE_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
