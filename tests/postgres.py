# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A throwaway PostgreSQL cluster started from the installed binaries, for running the suite on PostgreSQL.

``scripts/test`` installs Debian's postgresql package where initdb is missing. PostgreSQL refuses to run as
root, so under root the cluster runs as the ``postgres`` system user.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    return None


def available() -> bool:
    return _binary("initdb") is not None and _binary("pg_ctl") is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def cluster() -> Iterator[str]:
    """Yield a SQLAlchemy URL prefix (without database name) of a fresh cluster; stop and remove it after."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    assert initdb and pg_ctl, "PostgreSQL binaries not found: scripts/test installs them"
    root = Path(tempfile.mkdtemp(prefix="hygie-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", _free_port()
    subprocess.run(
        [*as_user, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
    )
    # Small WAL (minimal level, 64 MB cap): the throwaway cluster never grows to gigabytes that take minutes to
    # remove when the session ends.
    options = (
        f"-p {port} -k {root} -c listen_addresses='' -c fsync=off -c full_page_writes=off -c wal_level=minimal "
        "-c max_wal_senders=0 -c max_wal_size=64MB -c min_wal_size=32MB"
    )
    subprocess.run(
        [*as_user, pg_ctl, "-D", str(data), "-o", options, "-w", "-l", str(root / "log"), "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@/?host={root}&port={port}"
    finally:
        # Stopped and removed by a detached process: a worker's last teardown took 15 to 47 s here on a loaded
        # machine (hundreds of databases' files), added to the whole suite's time; nothing waits for it.
        stop = " ".join(shlex.quote(a) for a in [*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"])
        subprocess.Popen(
            ["sh", "-c", f"{stop} >/dev/null 2>&1; rm -rf {shlex.quote(str(root))}"],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def create_database(prefix_url: str, name: str, template: str | None = None) -> str:
    import psycopg

    query = prefix_url.split("?", 1)[1]
    params = dict(p.split("=", 1) for p in query.split("&"))
    with psycopg.connect(host=params["host"], port=params["port"], user="postgres", dbname="postgres") as conn:
        conn.autocommit = True
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return prefix_url.replace("/?", f"/{name}?")


def drop_database(url: str) -> None:
    """Drop a test database (its connections closed by force): the cluster stays small, so stopping it at the
    end of the session does not spend minutes removing gigabytes of finished tests' databases."""
    import psycopg

    name = url.split("/")[-1].split("?", 1)[0]
    query = url.split("?", 1)[1]
    params = dict(p.split("=", 1) for p in query.split("&"))
    with psycopg.connect(host=params["host"], port=params["port"], user="postgres", dbname="postgres") as conn:
        conn.autocommit = True
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
