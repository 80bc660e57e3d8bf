# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Delivery folders: one batch per folder, CSV files appended chunk by chunk, the manifest written last.

A batch folder without ``manifest.json`` is incomplete by definition: the manifest is written (atomically,
after every CSV of the batch is on disk) only when the whole run has succeeded. Row counts and SHA-256 are
computed while writing, so files are never read back.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hygie.ingest.contract import MANIFEST, TABLES


@dataclass
class _TableFile:
    path: Path
    rows: int = 0
    digest: hashlib._Hash = field(default_factory=hashlib.sha256)

    def write(self, data: bytes, rows: int) -> None:
        with self.path.open("ab") as f:
            f.write(data)
        self.digest.update(data)
        self.rows += rows


class Batch:
    def __init__(self, root: Path, name: str, batch_id: str, created_at: str, tables: Sequence[str]) -> None:
        self.folder = root / name
        self.batch_id = batch_id
        self.created_at = created_at
        self.folder.mkdir(parents=True, exist_ok=True)
        # A previous run's manifest must not vouch for files about to be rewritten.
        (self.folder / MANIFEST).unlink(missing_ok=True)
        self.files: dict[str, _TableFile] = {}
        for table in tables:
            tf = _TableFile(self.folder / f"{table}.csv")
            tf.path.write_bytes(b"")
            tf.write(_csv_line(TABLES[table].columns), 0)
            self.files[table] = tf

    def append_lines(self, table: str, lines: list[str]) -> None:
        """Append rows already formatted as CSV lines (no line ends)."""
        if lines:
            self.files[table].write(("\n".join(lines) + "\n").encode("utf-8"), len(lines))

    def append_rows(self, table: str, rows: Iterable[Sequence[str]]) -> None:
        """Append rows through the csv module (for values that may need quoting)."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        count = 0
        for row in rows:
            writer.writerow(row)
            count += 1
        if count:
            self.files[table].write(buf.getvalue().encode("utf-8"), count)

    def rows(self, table: str) -> int:
        return self.files[table].rows

    def finish(self, producer: str) -> None:
        for tf in self.files.values():
            with tf.path.open("rb") as f:
                os.fsync(f.fileno())
        manifest = {
            "producer": producer,
            "batch_id": self.batch_id,
            "created_at": self.created_at,
            "files": [
                {"name": tf.path.name, "rows": tf.rows, "sha256": tf.digest.hexdigest()} for tf in self.files.values()
            ],
        }
        tmp = self.folder / f".{MANIFEST}.tmp"
        with tmp.open("w", encoding="utf-8", newline="\n") as f:
            json.dump(manifest, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.folder / MANIFEST)
        _fsync_dir(self.folder)


def _csv_line(values: Sequence[str]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue().encode("utf-8")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
