# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Write and restore a hub backup.

Consistency: the backup holds the hub's ingestion lock, so no batch is committed meanwhile; the metadata database
is copied with SQLite's online backup API or ``pg_dump`` (one snapshot), and the warehouse files are exactly those
the copied catalog lists, each checked against its catalogued SHA-256 as it is read.

Atomicity: the archive is written to a hidden ``.NAME.partial`` file beside DEST, fsynced, then renamed to DEST and
the directory fsynced. A crash leaves at most the hidden partial file, which has no final chunk and is refused by
``hygie restore`` as truncated.

Keys: the keystore is copied as it is, sealed under the master key (passphrase or key file, never in the backup);
a destroyed key version keeps only its tombstone, so no backup made after a key's destruction carries the key.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import create_engine, inspect, make_url, text

from hygie import faults
from hygie.audit.events import record_now
from hygie.backup.archive import BackupError, DecryptingReader, EncryptingWriter
from hygie.config import Settings
from hygie.hub import Hub

FORMAT = "hygie-backup/1"
MANIFEST = "manifest.json"
ACTOR = "cli:operator"
_SKIPPED_TOP = {"locks", "keys", "warehouse"}
"""Top-level data dir entries not copied as plain files: locks are per process, keys and warehouse have their own
rules below."""


@dataclass
class BackupReport:
    path: Path
    bytes: int
    files: int
    seconds: float
    destroyed_key_versions: int
    """Key versions that exist in the keystore only as a tombstone (their material is in no backup)."""


@dataclass
class RestoreReport:
    files: int
    seconds: float
    warehouse_problems: list[str] = field(default_factory=list)
    audit_ok: bool = False
    audit_summary: str = ""


def _passphrase(settings: Settings) -> str:
    if settings.backup_passphrase is None or not settings.backup_passphrase.get_secret_value():
        raise BackupError("no backup passphrase: set HYGIE_BACKUP_PASSPHRASE (kept apart from the hub and its keys)")
    return settings.backup_passphrase.get_secret_value()


def _sqlite_path(settings: Settings) -> Path | None:
    url = make_url(settings.database)
    if url.get_backend_name() != "sqlite":
        return None
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory database cannot be backed up")
    return Path(url.database)


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    raise BackupError(f"{name} is not installed: install the PostgreSQL client tools of the server's version")


def _pg_env(settings: Settings) -> dict[str, str]:
    """libpq environment for the configured URL (the password travels in the environment, never on a command line)."""
    url = make_url(settings.database)
    env = dict(os.environ)
    host = url.query.get("host") or url.host
    port = url.query.get("port") or url.port
    values = {
        "PGHOST": host,
        "PGPORT": port,
        "PGUSER": url.username,
        "PGPASSWORD": url.password,
        "PGDATABASE": url.database,
    }
    for name, value in values.items():
        if value:
            env[name] = str(value[0] if isinstance(value, tuple) else value)
    return env


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _HashingReader(io.RawIOBase):
    def __init__(self, source: IO[bytes]) -> None:
        self._source, self.digest = source, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self.digest.update(data)
        return data


class _Writer:
    """Adds members to the tar stream and remembers each one's hash for the manifest."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.entries: dict[str, dict[str, Any]] = {}

    def add_bytes(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
        self.tar.addfile(info, io.BytesIO(data))
        self.entries[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}

    def add_file(self, name: str, path: Path) -> str:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = path.stat().st_size, 0o600, int(time.time())
        with path.open("rb") as f:
            reader = _HashingReader(f)
            self.tar.addfile(info, reader)
        digest = reader.digest.hexdigest()
        self.entries[name] = {"sha256": digest, "bytes": info.size}
        return digest


def _keystore_copy(path: Path) -> tuple[bytes, int]:
    """The local keystore as stored, with any destroyed version reduced to its tombstone (the live keystore already
    holds nothing else; this makes it a property of the backup, not an assumption)."""
    document = json.loads(path.read_text(encoding="utf-8"))
    destroyed = 0
    for entry in document.get("keys", {}).values():
        for version, slot in list(entry.get("versions", {}).items()):
            if "destroyed_at" in slot:
                destroyed += 1
                entry["versions"][version] = {"destroyed_at": slot["destroyed_at"]}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8"), destroyed


def _data_files(data_dir: Path, skip: set[Path]) -> Iterator[Path]:
    for root, dirs, files in os.walk(data_dir):
        here = Path(root)
        if here == data_dir:
            dirs[:] = [d for d in dirs if d not in _SKIPPED_TOP and not d.startswith(".backup-")]
        for name in sorted(files):
            path = here / name
            if path in skip or name.endswith(".tmp") or not path.is_file() or path.is_symlink():
                continue
            yield path


def create_backup(hub: Hub, dest: Path) -> BackupReport:
    """Write a complete encrypted backup of ``hub`` to ``dest`` (a new file), or nothing that looks like one."""
    started = time.monotonic()
    settings = hub.settings
    passphrase = _passphrase(settings)
    dest = dest.absolute()
    data_dir = settings.data_dir.resolve()
    if dest.exists():
        raise BackupError(f"{dest} already exists: choose a new file name")
    if not dest.parent.is_dir():
        raise BackupError(f"{dest.parent} is not a directory")
    if dest.resolve().is_relative_to(data_dir):
        raise BackupError(f"{dest} lies inside the data dir: write backups elsewhere")
    sqlite_path = _sqlite_path(settings)
    record_now(hub.session, actor=ACTOR, action="backup.create", object="hub", detail={"archive": dest.name})
    partial = dest.parent / f".{dest.name}.partial"
    staging = Path(tempfile.mkdtemp(prefix=".backup-", dir=data_dir))  # 0700, inside the private data dir
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out, hub.ingest_lock():
            sealer = EncryptingWriter(
                out,
                passphrase,
                memory_kib=settings.kdf_memory_kib,
                iterations=settings.kdf_iterations,
                lanes=settings.kdf_lanes,
            )
            with tarfile.open(fileobj=sealer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                writer = _Writer(tar)
                catalog, db_member, skip = _dump_database(hub, sqlite_path, staging, writer)
                faults.point("backup.after-database")
                destroyed = _add_keys(data_dir / "keys", writer)
                for relative, digest in catalog:
                    path = data_dir / "warehouse" / relative
                    if not path.is_file():
                        raise BackupError(f"warehouse file {relative} is listed in the catalog but missing")
                    if writer.add_file(f"data/warehouse/{relative}", path) != digest:
                        raise BackupError(f"warehouse file {relative} differs from its catalogued SHA-256")
                    faults.point("backup.mid-warehouse")
                for path in _data_files(data_dir, skip):
                    writer.add_file(f"data/{path.relative_to(data_dir).as_posix()}", path)
                manifest = {
                    "format": FORMAT,
                    "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "database": {"dialect": "sqlite" if sqlite_path else "postgresql", "member": db_member},
                    "key_backend": settings.key_backend,
                    "destroyed_key_versions": destroyed,
                    "files": writer.entries,
                }
                writer.add_bytes(MANIFEST, json.dumps(manifest, sort_keys=True, indent=1).encode("utf-8"))
            faults.point("backup.before-final-chunk")
            sealer.finish()
            out.flush()
            os.fsync(out.fileno())
        faults.point("backup.before-rename")
        os.rename(partial, dest)
        _fsync_dir(dest.parent)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return BackupReport(
        path=dest,
        bytes=dest.stat().st_size,
        files=len(writer.entries) - 1,  # the manifest aside
        seconds=time.monotonic() - started,
        destroyed_key_versions=destroyed,
    )


def _dump_database(
    hub: Hub, sqlite_path: Path | None, staging: Path, writer: _Writer
) -> tuple[list[tuple[str, str]], str, set[Path]]:
    """Copy the database into the archive; return the catalog (path, sha256) as of that copy."""
    if sqlite_path is not None:
        copy = staging / "hygie.sqlite"
        source = sqlite3.connect(str(sqlite_path))
        target = sqlite3.connect(str(copy))
        try:
            source.backup(target)  # the online backup API: a consistent copy while others read and write
            catalog = [(str(p), str(h)) for p, h in target.execute("SELECT path, sha256 FROM warehouse_file")]
        finally:
            target.close()
            source.close()
        os.chmod(copy, 0o600)
        writer.add_file("db/hygie.sqlite", copy)
        skip = {sqlite_path.resolve()} | {
            sqlite_path.resolve().with_name(sqlite_path.name + s) for s in ("-wal", "-shm", "-journal")
        }
        return catalog, "db/hygie.sqlite", skip
    dump = staging / "hygie.pgdump"
    result = subprocess.run(  # noqa: S603  (a fixed tool, paths we chose)
        [_pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", "--file", str(dump)],
        env=_pg_env(hub.settings),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise BackupError(f"pg_dump failed: {result.stderr.strip()[-500:]}")
    writer.add_file("db/hygie.pgdump", dump)
    with hub.engine.connect() as connection:  # under the ingestion lock: the same catalog as the dump's
        catalog = [(str(p), str(h)) for p, h in connection.execute(text("SELECT path, sha256 FROM warehouse_file"))]
    return catalog, "db/hygie.pgdump", set()


def _add_keys(keys_dir: Path, writer: _Writer) -> int:
    destroyed = 0
    for path in sorted(keys_dir.iterdir()) if keys_dir.is_dir() else []:
        if not path.is_file() or path.suffix in (".lock", ".tmp") or path.name.startswith("."):
            continue
        if path.name == "keystore.json":
            data, destroyed = _keystore_copy(path)
            writer.add_bytes("keys/keystore.json", data)
        else:
            writer.add_file(f"keys/{path.name}", path)
    return destroyed


# -- restore -----------------------------------------------------------------------------------------------------


def _require_empty(settings: Settings, sqlite_path: Path | None) -> None:
    data_dir = settings.data_dir
    if data_dir.exists() and any(data_dir.iterdir()):
        raise BackupError(f"restore needs an empty hub: {data_dir} is not empty; nothing was changed")
    if sqlite_path is not None:
        if sqlite_path.exists():
            raise BackupError(f"restore needs an empty hub: the database {sqlite_path} exists; nothing was changed")
        return
    engine = create_engine(settings.database)
    try:
        with engine.connect() as connection:
            if inspect(connection).get_table_names():
                raise BackupError("restore needs an empty hub: the PostgreSQL database has tables; nothing was changed")
    finally:
        engine.dispose()


def _safe_member(name: str) -> bool:
    parts = Path(name).parts
    return (
        bool(parts)
        and not Path(name).is_absolute()
        and ".." not in parts
        and parts[0] in ("db", "keys", "data", MANIFEST)
    )


def _extract(src: Path, passphrase: str, staging: Path) -> tuple[dict[str, Any], int]:
    """Decrypt and unpack into ``staging``; check every member against the manifest. Nothing is placed yet."""
    seen: dict[str, tuple[str, int]] = {}
    manifest: dict[str, Any] | None = None
    with src.open("rb") as raw:
        reader = io.BufferedReader(DecryptingReader(raw, passphrase), buffer_size=1 << 20)
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                for member in tar:
                    if manifest is not None:
                        raise BackupError(f"the backup has a member after its manifest ({member.name}): it was altered")
                    if not member.isfile() or not _safe_member(member.name):
                        raise BackupError(f"the backup holds an unexpected member {member.name!r}: refused")
                    source = tar.extractfile(member)
                    assert source is not None
                    if member.name == MANIFEST:
                        manifest = json.loads(source.read())
                        continue
                    target = staging / member.name
                    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                    digest = hashlib.sha256()
                    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "wb") as out:
                        while block := source.read(1 << 20):
                            digest.update(block)
                            out.write(block)
                        out.flush()
                        os.fsync(out.fileno())
                    seen[member.name] = (digest.hexdigest(), member.size)
        except tarfile.TarError as exc:
            raise BackupError(f"the backup's content is not readable ({type(exc).__name__}): it was altered") from exc
    if manifest is None:
        raise BackupError("the backup has no manifest: it is incomplete")
    if manifest.get("format") != FORMAT:
        raise BackupError(f"unknown backup format {manifest.get('format')!r}")
    listed: dict[str, Any] = manifest["files"]
    for name, expected in sorted(listed.items()):
        if name not in seen:
            raise BackupError(f"the backup is incomplete: {name} is listed in the manifest but missing")
        if seen[name] != (expected["sha256"], expected["bytes"]):
            raise BackupError(f"{name} does not match its SHA-256 in the manifest: the backup was altered")
    extra = sorted(set(seen) - set(listed))
    if extra:
        raise BackupError(f"the backup holds {extra[0]}, which its manifest does not list: it was altered")
    return manifest, len(seen)


def restore_backup(settings: Settings, src: Path) -> RestoreReport:
    """Check ``src`` completely, then restore it into the empty hub ``settings`` names, then verify that hub."""
    started = time.monotonic()
    passphrase = _passphrase(settings)
    if not src.is_file():
        raise BackupError(f"{src} is not a file")
    sqlite_path = _sqlite_path(settings)
    _require_empty(settings, sqlite_path)
    data_dir = settings.data_dir.absolute()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}.restore-", dir=data_dir.parent))
    try:
        manifest, files = _extract(src, passphrase, staging)
        dialect = manifest["database"]["dialect"]
        if dialect != ("sqlite" if sqlite_path else "postgresql"):
            raise BackupError(f"this backup holds a {dialect} database: restore it onto a hub configured for {dialect}")
        if manifest.get("key_backend", "local") != settings.key_backend:
            raise BackupError(
                f"this backup's keys are for the {manifest['key_backend']!r} key backend: set HYGIE_KEY_BACKEND"
            )
        data_dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(data_dir, 0o700)
        if (staging / "data").is_dir():
            for entry in (staging / "data").iterdir():
                os.rename(entry, data_dir / entry.name)
        os.rename(staging / "keys", data_dir / "keys")
        member = staging / manifest["database"]["member"]
        if sqlite_path is not None:
            os.rename(member, sqlite_path)
            os.chmod(sqlite_path, 0o600)
        else:
            result = subprocess.run(  # noqa: S603  (a fixed tool, paths we chose)
                [
                    _pg_tool("pg_restore"),
                    "--no-owner",
                    "--no-privileges",
                    "--exit-on-error",
                    "--dbname",
                    settings_db_name(settings),
                    str(member),
                ],
                env=_pg_env(settings),
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                raise BackupError(f"pg_restore failed: {result.stderr.strip()[-500:]}")
        _fsync_dir(data_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report = RestoreReport(files=files, seconds=0.0)
    _verify_restored(settings, report)
    report.seconds = time.monotonic() - started
    return report


def settings_db_name(settings: Settings) -> str:
    return str(make_url(settings.database).database)


def _verify_restored(settings: Settings, report: RestoreReport) -> None:
    from hygie.audit.log import TransparencyLog

    hub = Hub.open(settings)
    try:
        with hub.session() as session:
            report.warehouse_problems = hub.warehouse.verify(session)
        verified = TransparencyLog.for_hub(hub).verify()
        report.audit_ok, report.audit_summary = verified.ok, verified.summary()
        record_now(
            hub.session,
            actor=ACTOR,
            action="backup.restore",
            outcome="ok" if report.audit_ok and not report.warehouse_problems else "failed",
            object="hub",
            detail={"files": report.files, "warehouse_problems": len(report.warehouse_problems)},
        )
    finally:
        hub.close()
