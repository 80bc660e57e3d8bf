"""Reading and verifying a delivery's ``manifest.json``."""

from __future__ import annotations

import hashlib
import json
import re
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


def read_manifest(batch_dir: Path, errors: ErrorLog) -> Manifest | None:
    """Parse the manifest and check that it lists exactly the batch's CSV files, each a known table."""
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
