# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Reading and verifying a delivery's ``manifest.json``."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hygie.ingest.contract import MANIFEST, TABLES
from hygie.ingest.errors import ErrorLog


class ManifestFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    rows: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")


class Manifest(BaseModel):
    model_config = ConfigDict(extra="allow")
    producer: str = Field(min_length=1, max_length=200)
    batch_id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
    created_at: str = Field(min_length=1, max_length=64)
    files: list[ManifestFile] = Field(min_length=1)

    def table_of(self, name: str) -> str:
        return name.removesuffix(".csv")

    def content_digest(self) -> str:
        """Identifies the delivered content whatever the batch id: hash of the sorted file list."""
        listing = sorted((f.name, f.sha256.lower(), f.rows) for f in self.files)
        return hashlib.sha256(json.dumps(listing).encode()).hexdigest()


_FILE_NAME = re.compile(r"^[A-Z0-9_]+\.csv$")


_SPECIAL = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def refuse_links_and_special_files(batch_dir: Path, errors: ErrorLog) -> None:
    """Name every symbolic link and every file that is not a regular file or folder in the batch, at any depth,
    the batch folder included. Only ``lstat`` is used: nothing is followed, opened or read."""
    try:
        if batch_dir.is_symlink():
            errors.add(
                batch_dir.name or str(batch_dir),
                None,
                None,
                "the batch folder is a symbolic link: name the folder itself",
            )
            return
    except OSError:
        return
    pending = [batch_dir]
    while pending and errors.room:
        folder = pending.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue  # a missing or unreadable folder: reported when the manifest is read
        for entry in entries:
            name = Path(entry.path).relative_to(batch_dir).as_posix()
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError:
                errors.add(name, None, None, "cannot be examined (removed or unreadable while the batch was checked)")
                continue
            if stat.S_ISLNK(mode):
                errors.add(name, None, None, "a symbolic link: a delivery holds only regular files, links are refused")
            elif stat.S_ISDIR(mode):
                pending.append(Path(entry.path))
            elif not stat.S_ISREG(mode):
                kind = next((label for test, label in _SPECIAL if test(mode)), "a special file")
                errors.add(name, None, None, f"{kind}: a delivery holds only regular files")


def read_manifest(batch_dir: Path, errors: ErrorLog) -> Manifest | None:
    """Parse the manifest and check that it lists exactly the batch's CSV files, each a known table.

    Symbolic links and special files anywhere in the batch are refused first, before any file is opened."""
    refuse_links_and_special_files(batch_dir, errors)
    if errors:
        return None
    path = batch_dir / MANIFEST
    if not path.is_file():
        errors.add(MANIFEST, None, None, f"no {MANIFEST} in {batch_dir.name}: every delivery folder needs one")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        errors.add(MANIFEST, None, None, "not UTF-8 text")
        return None
    except json.JSONDecodeError as exc:
        errors.add(MANIFEST, exc.lineno, None, f"not valid JSON ({exc.msg})")
        return None
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        for problem in exc.errors():
            location = ".".join(str(p) for p in problem["loc"])
            errors.add(MANIFEST, None, location or None, problem["msg"])
        return None
    seen: set[str] = set()
    for entry in manifest.files:
        if entry.name in seen:
            errors.add(MANIFEST, None, "files", f"{entry.name} is listed twice")
        seen.add(entry.name)
        if not _FILE_NAME.match(entry.name) or manifest.table_of(entry.name) not in TABLES:
            known = ", ".join(f"{t}.csv" for t in TABLES)
            errors.add(MANIFEST, None, "files", f"{entry.name} is not a table this hub accepts ({known})")
        elif not (batch_dir / entry.name).is_file():
            errors.add(entry.name, None, None, "listed in the manifest but missing from the delivery")
    for extra in sorted(p.name for p in batch_dir.glob("*.csv")):
        if extra not in seen:
            errors.add(extra, None, None, "present in the delivery but not listed in the manifest")
    return None if errors else manifest
