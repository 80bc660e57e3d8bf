# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Delivery files as producers' tools write them: any RFC 4180 CSV is read; bytes that are not UTF-8 are named by
file and line; symbolic links and special files are refused before anything is read."""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hygie.hub import Hub
from hygie.ingest.contract import PSEUDONYM_COLUMN, TABLES
from hygie.ingest.pipeline import ingest_batch
from hygie.ingest.rules import rules
from hygie.warehouse.catalog import FileRow
from hygie.warehouse.stats import collect
from tests.conftest import make_settings
from tests.delivery import Delivery, sha256, small_delivery

TRICKY_ADDRESS = '12, rue du "Port"'
"""Holds the delimiter and a quote: every writer must quote it, doubling the quote."""


def write_variant(
    d: Delivery, folder: Path, batch_id: str, quoting: str, newline: str, bom: bool, final_newline: bool, seed: int
) -> Path:
    """Write ``d`` as one RFC 4180 writer would: cells quoted all, minimally, when not numeric, or some chosen at
    random; CRLF or LF; with or without a UTF-8 BOM and a line end after the last record."""
    folder.mkdir(parents=True)
    pick = random.Random(seed)
    files = []
    for table, rows in d.rows.items():
        columns = list(TABLES[table].columns)
        out = io.StringIO(newline="")
        if quoting == "some":
            for row in [dict(zip(columns, columns, strict=True)), *rows]:
                cells = []
                for c in columns:
                    v = row[c]
                    must = any(ch in v for ch in ',"\r\n')
                    cells.append('"' + v.replace('"', '""') + '"' if must or pick.random() < 0.5 else v)
                out.write(",".join(cells) + newline)
        else:
            mode = {"all": csv.QUOTE_ALL, "minimal": csv.QUOTE_MINIMAL, "nonnumeric": csv.QUOTE_NONNUMERIC}[quoting]
            writer = csv.writer(out, quoting=mode, lineterminator=newline)
            writer.writerow(columns)
            table_rules = rules(table)
            for row in rows:
                # QUOTE_NONNUMERIC leaves numbers bare: give it numbers where the contract has them.
                cells: list[Any] = []
                for c in columns:
                    v, kind = row[c], table_rules[c].kind
                    if quoting == "nonnumeric" and v and kind in {"integer", "number"}:
                        cells.append(int(v) if kind == "integer" else float(v))
                    else:
                        cells.append(v)
                writer.writerow(cells)
        text = out.getvalue()
        if not final_newline:
            text = text.removesuffix(newline)
        path = folder / f"{table}.csv"
        path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
        files.append({"name": path.name, "rows": len(rows), "sha256": sha256(path)})
    manifest = {"producer": "TEST", "batch_id": batch_id, "created_at": "2025-01-01T00:00:00Z", "files": files}
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def shifted(offset: int) -> Delivery:
    """The small delivery with its claims renumbered, so that every variant can be stored in one hub."""
    d = small_delivery()
    d.rows["IR_BEN_R"][0]["ADRESSE"] = TRICKY_ADDRESS
    for table in ("ER_PRS_F", "ER_BIO_F"):
        for row in d.rows[table]:
            row["DCT_ORD_NUM"] = str(int(row["DCT_ORD_NUM"]) + offset)
    return d


def stored_rows(hub: Hub, batch_id: str, offset: int) -> dict[str, list[tuple[Any, ...]]]:
    """The rows a batch stored, table by table, sorted, its claim numbers shifted back."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with hub.session() as session:
        files = list(session.query(FileRow).filter(FileRow.batch_id == batch_id))
    for table in ("IR_BEN_R", "ER_PRS_F", "ER_BIO_F"):
        paths = [hub.warehouse.directory / f.path for f in files if f.table_name == table]
        rows = hub.warehouse.dataset_of(paths).to_table().to_pylist()
        for row in rows:
            if "DCT_ORD_NUM" in row:
                row["DCT_ORD_NUM"] -= offset
            assert row.get(PSEUDONYM_COLUMN, "-"), "a care or beneficiary row lost its pseudonym"
        out[table] = sorted(tuple(sorted(row.items(), key=lambda kv: kv[0])) for row in rows)
    return out


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One hub holding the plain file (written by ``csv.DictWriter``, minimal quoting, LF, no BOM)."""
    root = tmp_path_factory.mktemp("rfc4180")
    hub = Hub.init(make_settings(root / "hub"))
    result = ingest_batch(hub, shifted(0).write(root / "plain", "PLAIN"))
    assert result.status == "accepted", result.errors
    yield hub, root, stored_rows(hub, "PLAIN", 0)
    hub.close()


_examples = itertools.count(1)


@settings(max_examples=24, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    quoting=st.sampled_from(["all", "minimal", "nonnumeric", "some"]),
    newline=st.sampled_from(["\r\n", "\n"]),
    bom=st.booleans(),
    final_newline=st.booleans(),
    seed=st.integers(0, 2**16),
    address=st.text(alphabet=" ,\"a;é'", min_size=1, max_size=8).filter(lambda a: a.strip() != ""),
)
def test_every_rfc4180_writer_variation_stores_the_same_rows(
    shared: Any, quoting: str, newline: str, bom: bool, final_newline: bool, seed: int, address: str
) -> None:
    hub, root, plain = shared
    k = next(_examples)
    offset = 100_000 * k
    d = shifted(offset)
    d.rows["IR_BEN_R"][1]["ADRESSE"] = address
    batch_id = f"V{k}"
    folder = write_variant(d, root / batch_id, batch_id, quoting, newline, bom, final_newline, seed)
    result = ingest_batch(hub, folder)
    assert result.status == "accepted", (quoting, repr(newline), bom, final_newline, result.errors)
    assert result.rows == {"IR_BEN_R": 12, "ER_PRS_F": 13, "ER_BIO_F": 1}
    assert stored_rows(hub, batch_id, offset) == plain
    with hub.session() as session:
        vault = hub.vault(session)
        first, second = (vault.find(d.rows["IR_BEN_R"][i]["BEN_NIR"]) for i in (0, 1))
    assert first is not None and first.address == TRICKY_ADDRESS
    assert second is not None and second.address == address


def _rejected_quietly(hub: Hub, folder: Path, capfd: pytest.CaptureFixture[str], monkeypatch: Any) -> Any:
    unraisable: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    result = ingest_batch(hub, folder)
    out = capfd.readouterr()
    assert "Traceback" not in out.out + out.err and "Exception ignored" not in out.out + out.err
    assert unraisable == [], "an exception was raised and swallowed while reading the file"
    assert result.status == "rejected"
    assert collect(hub)["batches"] == 0
    return result


@pytest.mark.parametrize(
    ("line", "malformed"),
    [(1, False), (5, False), (5, True), (14, True)],
    ids=["header", "row", "row-with-extra-field", "last-row-with-extra-field"],
)
def test_bytes_that_are_not_utf8_are_named_by_file_and_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: Any, line: int, malformed: bool
) -> None:
    folder = small_delivery().write(tmp_path / "b", "B")
    path = folder / "ER_PRS_F.csv"
    lines = path.read_bytes().split(b"\n")
    # A Latin-1 "é" and a stray 0xFF inside a value of the line (a claim-organisation number or a column name).
    lines[line - 1] = lines[line - 1].replace(b"C68", b"C\xe96\xff8").replace(b"ORG_CLE", b"ORG_\xe9CLE")
    if malformed:
        lines[line - 1] += b",\xff\xfe"
    path.write_bytes(b"\n".join(lines))
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry in manifest["files"]:
        if entry["name"] == path.name:
            entry["sha256"] = sha256(path)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    hub = Hub.init(make_settings(tmp_path / "hub"))
    try:
        result = _rejected_quietly(hub, folder, capfd, monkeypatch)
    finally:
        hub.close()
    mine = [e for e in result.errors if e.file == "ER_PRS_F.csv"]
    assert [(e.line, e.field, e.reason) for e in mine] == [(line, None, "not UTF-8 text")], result.errors
    for e in result.errors:
        assert "682674" not in str(e) and "\\x" not in str(e) and "\ufffd" not in str(e)


def test_a_fully_quoted_header_with_a_broken_quote_is_named_not_echoed(tmp_path: Path) -> None:
    folder = small_delivery().write(tmp_path / "b", "B")
    path = folder / "ER_BIO_F.csv"
    head, rest = path.read_text(encoding="utf-8").split("\n", 1)
    first, others = head.split(",", 1)
    path.write_text(f'"{first}"x,{others}\n{rest}', encoding="utf-8")  # text after a closing quote
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry in manifest["files"]:
        if entry["name"] == path.name:
            entry["sha256"] = sha256(path)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    hub = Hub.init(make_settings(tmp_path / "hub"))
    try:
        result = ingest_batch(hub, folder)
    finally:
        hub.close()
    assert result.status == "rejected"
    assert [(e.file, e.line) for e in result.errors] == [("ER_BIO_F.csv", 1)], result.errors
    assert "quote" in result.errors[0].reason and "FLX" not in result.errors[0].reason


def _refused(tmp_path: Path, folder: Path, names: list[str]) -> None:
    hub = Hub.init(make_settings(tmp_path / "hub"))
    try:
        result = ingest_batch(hub, folder)
        assert result.status == "rejected"
        assert sorted(e.file for e in result.errors) == sorted(names), result.errors
        assert collect(hub)["batches"] == 0
        assert not any(p.is_file() for p in hub.warehouse.directory.rglob("*"))
    finally:
        hub.close()


def test_a_symbolic_link_to_a_file_outside_the_batch_is_refused(tmp_path: Path) -> None:
    folder = small_delivery().write(tmp_path / "b", "B")
    outside = tmp_path / "elsewhere.csv"
    (folder / "ER_BIO_F.csv").rename(outside)
    (folder / "ER_BIO_F.csv").symlink_to(outside)  # same bytes, same checksum: only the link is wrong
    _refused(tmp_path, folder, ["ER_BIO_F.csv"])
    assert "symbolic link" in ingest_errors(tmp_path, folder)[0].reason


def ingest_errors(tmp_path: Path, folder: Path) -> list[Any]:
    hub = Hub.init(make_settings(tmp_path / "hub2"))
    try:
        return ingest_batch(hub, folder).errors
    finally:
        hub.close()


def test_links_inside_the_batch_and_a_linked_batch_folder_are_refused(tmp_path: Path) -> None:
    folder = small_delivery().write(tmp_path / "b", "B")
    (folder / "notes.txt").symlink_to(folder / "manifest.json")
    (folder / "more").mkdir()
    (folder / "more" / "up").symlink_to(folder)
    _refused(tmp_path, folder, ["more/up", "notes.txt"])
    (folder / "notes.txt").unlink()
    (folder / "more" / "up").unlink()
    linked = tmp_path / "linked"
    linked.symlink_to(folder)
    errors = ingest_errors(tmp_path, linked)
    assert [(e.file, e.line) for e in errors] == [("linked", None)] and "symbolic link" in errors[0].reason


@pytest.mark.parametrize("where", ["ER_BIO_F.csv", "extra/pipe"])
def test_a_fifo_in_the_batch_is_refused_without_being_opened(tmp_path: Path, where: str) -> None:
    folder = small_delivery().write(tmp_path / "b", "B")
    fifo = folder / where
    fifo.parent.mkdir(exist_ok=True)
    if fifo.exists():
        fifo.unlink()
    os.mkfifo(fifo)  # opening it for reading would block this test: refusing it must not open it
    _refused(tmp_path, folder, [where])
    assert "named pipe" in ingest_errors(tmp_path, folder)[0].reason
