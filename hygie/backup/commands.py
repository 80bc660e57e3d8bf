# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""``hygie backup DEST`` and ``hygie restore SRC`` (registered on the main command line by hygie/cli.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def backup(dest: Annotated[Path, typer.Argument(help="The backup file to create (must not exist).")]) -> None:
    """Write an encrypted backup (database, warehouse, data dir files, wrapped keys) with HYGIE_BACKUP_PASSPHRASE."""
    from hygie.backup.archive import BackupError
    from hygie.backup.core import create_backup
    from hygie.config import get_settings  # here: pydantic is not needed for `hygie --help` (tests/test_startup.py)
    from hygie.hub import Hub, HubNotInitialised
    from hygie.keys import CustodyLocked

    try:
        hub = Hub.open(get_settings())
    except (HubNotInitialised, CustodyLocked) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    try:
        report = create_backup(hub, dest)
    except BackupError as exc:
        print(f"error: backup not written: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    finally:
        hub.close()
    print(
        f"backup written to {report.path}: {report.files} files, {report.bytes:,} bytes, {report.seconds:.1f} s; "
        f"{report.destroyed_key_versions} destroyed key version(s) left out"
    )


def restore(src: Annotated[Path, typer.Argument(help="The backup file to restore.")]) -> None:
    """Check a backup completely, restore it into an empty data dir and database, then verify audit and warehouse."""
    from hygie.backup.archive import BackupError
    from hygie.backup.core import restore_backup
    from hygie.config import get_settings

    try:
        report = restore_backup(get_settings(), src)
    except BackupError as exc:
        print(f"error: nothing restored: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    for problem in report.warehouse_problems:
        print(f"warehouse: {problem}", file=sys.stderr)
    print(report.audit_summary)
    if report.warehouse_problems or not report.audit_ok:
        raise typer.Exit(1)
    print(f"restored {report.files} files in {report.seconds:.1f} s; the warehouse and the audit log verify")
