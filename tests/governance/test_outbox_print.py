# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The mail room's print run writes names, addresses and codes: never into a file or link someone else planted, never
into a directory others can write to, and with the person who ran it on the record."""

from __future__ import annotations

import getpass
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from hygie.audit import AuditEvent
from hygie.cli import app as cli_app
from hygie.governance import letters
from hygie.governance.citizens import Citizens
from hygie.governance.errors import Denied
from hygie.governance.letters import CitizenLetter
from hygie.hub import Hub
from tests.conftest import TEST_PASSPHRASE
from tests.portal.world import people

SQLITE_ONLY = pytest.mark.parametrize("populated", ["sqlite"], indirect=True)  # files, not SQL, are tested here


def queue_letter(hub: Hub, delivery: Path, n: int) -> None:
    person = people(delivery)[n]
    with hub.session() as session:
        Citizens(hub, session).request_letter(nir=person["BEN_NIR"], last_name=person["NOM"],
                                              birth_date=person["DATE_NAISSANCE"], source="203.0.113.9")  # fmt: skip
        session.commit()


def unprinted(hub: Hub) -> int:
    with hub.session() as session:
        return len(list(session.scalars(select(CitizenLetter.id).where(CitizenLetter.printed_at.is_(None)))))


@SQLITE_ONLY
def test_planted_files_links_and_shared_directories_are_never_written(
    populated: Hub, delivery: Path, tmp_path: Path
) -> None:
    hub = populated
    queue_letter(hub, delivery, 10)
    assert unprinted(hub) == 1

    # 1. A directory others can write to (a shared /tmp-like one): refused, nothing marked printed.
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    for directory in (shared, tmp_path / "group"):
        directory.mkdir(exist_ok=True)
        if directory.name == "group":
            directory.chmod(0o770)
        with hub.session() as session, pytest.raises(Denied, match="can be written by other users"):
            letters.print_letters(hub, session, "console", directory)
        assert list(directory.iterdir()) == [] and unprinted(hub) == 1
    if os.geteuid() == 0:  # a directory of another user (chown needs root): refused too
        foreign = tmp_path / "foreign"
        foreign.mkdir(mode=0o755)
        os.chown(foreign, 65534, 65534)
        with hub.session() as session, pytest.raises(Denied, match="not owned by the user"):
            letters.print_letters(hub, session, "console", foreign)
        assert unprinted(hub) == 1

    # 2. A directory of ours where an attacker (earlier, or through a since-fixed permission) planted the names the
    # old code wrote to: a link to a file of theirs, a 0666 file they can read. Neither is written through.
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    stolen = tmp_path / "stolen.pdf"
    stolen.write_bytes(b"")
    with hub.session() as session:
        [letter] = session.scalars(select(CitizenLetter).where(CitizenLetter.printed_at.is_(None))).all()
    (mine / f"letter-{letter.id:08d}.pdf").symlink_to(stolen)
    readable = mine / f"letter-{letter.id + 1:08d}.pdf"
    readable.write_bytes(b"")
    readable.chmod(0o666)
    with hub.session() as session:
        printed = letters.print_letters(hub, session, "console", mine, operator="alice")
        session.commit()
    [path] = printed.files
    assert stolen.read_bytes() == b"" and readable.read_bytes() == b""  # the planted ones hold nothing
    assert path.parent == mine and not path.is_symlink() and path.read_bytes().startswith(b"%PDF")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.name.startswith(f"letter-{letter.id:08d}-") and len(path.name) > len("letter-00000000.pdf")

    # 3. The person who ran it is on the letter's row and on the record.
    with hub.session() as session:
        row = session.get(CitizenLetter, letter.id)
        assert row is not None and row.printed_by == "console (alice)"
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "outbox.print")).all()[-1]
        assert event.detail["operator"] == "alice" and event.detail["printed"] == 1


@SQLITE_ONLY
def test_the_command_makes_a_private_directory_refuses_a_shared_one_and_names_the_operator(
    populated: Hub, delivery: Path, tmp_path: Path
) -> None:
    hub = populated
    queue_letter(hub, delivery, 11)
    settings = hub.settings
    env = {"HYGIE_DATA_DIR": str(settings.data_dir), "HYGIE_KEY_PASSPHRASE": TEST_PASSPHRASE,
           "HYGIE_KDF_MEMORY_KIB": "8192", "HYGIE_KDF_ITERATIONS": "1", "HYGIE_KDF_LANES": "1"}  # fmt: skip
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    refused = CliRunner().invoke(cli_app, ["outbox", "print", "--out", str(shared)], env=env)
    assert refused.exit_code == 2 and "can be written by other users" in " ".join(refused.output.split())
    assert list(shared.iterdir()) == [] and unprinted(hub) == 1
    with hub.session() as session:
        denied = session.scalars(select(AuditEvent).where(AuditEvent.action == "outbox.print")).all()[-1]
        assert denied.outcome == "denied"

    out = tmp_path / "new" / "letters"
    done = CliRunner().invoke(cli_app, ["outbox", "print", "--out", str(out)], env=env)
    assert done.exit_code == 0, done.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o700 and len(list(out.iterdir())) == 1
    with hub.session() as session:
        [row] = session.scalars(select(CitizenLetter).where(CitizenLetter.printed_at.is_not(None))).all()
        assert row.printed_by == f"console ({getpass.getuser()})"
