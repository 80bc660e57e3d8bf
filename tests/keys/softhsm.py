# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""SoftHSM2 tokens for the PKCS#11 custody tests, initialised in a temporary directory.

SoftHSM reads its configuration (``SOFTHSM2_CONF``) and lists its tokens when the library is initialised, once per
process; so a small pool of tokens is initialised together, before the first test loads the library, and handed
out in turn, each wiped (every object destroyed) before it is handed out again. Small, because every SoftHSM
operation slows down with the number of tokens in its directory (about six times slower with twelve than with one).
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
PIN = "hygie-test-pin"
POOL = 3


@dataclass(frozen=True)
class Token:
    module: Path
    label: str
    pin: str
    conf: Path


_pool: list[Token] = []
_handed = 0
_root: Path | None = None


def _init_pool() -> None:
    global _root
    if shutil.which("softhsm2-util") is None or not MODULE.is_file():
        pytest.fail("SoftHSM2 is not installed: scripts/test installs Debian's softhsm2 (apt-get install softhsm2)")
    _root = Path(tempfile.mkdtemp(prefix="hygie-softhsm-"))
    atexit.register(shutil.rmtree, _root, ignore_errors=True)  # the tokens go with the test process
    (_root / "tokens").mkdir()
    conf = _root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {_root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
        "slots.removable = false\n",
        encoding="utf-8",
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    for i in range(POOL):
        label = f"hygie-t{os.getpid()}-{i}"
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", "so-" + PIN, "--pin", PIN],
            check=True,
            capture_output=True,
            env={**os.environ, "SOFTHSM2_CONF": str(conf)},
        )
        _pool.append(Token(MODULE, label, PIN, conf))


def fresh_token() -> Token:
    """A token holding no object: the pool's next one, wiped if it was used before in this process."""
    global _handed
    if _root is None:
        _init_pool()
    token = _pool[_handed % len(_pool)]
    if _handed >= len(_pool):
        _wipe(token)
    _handed += 1
    return token


def _wipe(token: Token) -> None:
    from pkcs11.exceptions import UserAlreadyLoggedIn

    from hygie.keys.pkcs11 import _library

    t = _library(token.module).get_token(token_label=token.label)
    try:
        session = t.open(rw=True, user_pin=token.pin)
    except UserAlreadyLoggedIn:
        session = t.open(rw=True)
    with session:
        for obj in list(session.get_objects()):
            obj.destroy()
