# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The security invariants of the ingestion path, checked on the bytes actually written."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from hygie.hub import Hub
from hygie.identity.pseudonym import PSEUDONYM_LENGTH, Pseudonymiser
from hygie.ingest.pipeline import ingest_batch
from hygie.keys import LocalKeystore
from tests.conftest import make_settings
from tests.delivery import small_delivery

IDENTITY_FIELDS = ("BEN_NIR", "NOM", "PRENOM", "ADRESSE", "TELEPHONE", "EMAIL")


def identifiers(people: list[dict[str, str]]) -> list[bytes]:
    out = []
    for p in people:
        out += [p[f].encode() for f in IDENTITY_FIELDS]
        out.append(p["BEN_NIR"][:13].encode())
        out.append(f"{p['NOM']},{p['PRENOM']}".encode())
    return out


def scan_data_dir(data_dir: Path, needles: list[bytes]) -> list[str]:
    """Every file under the data dir, every byte: where does any identifier appear in clear?"""
    found = []
    for path in data_dir.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            found += [f"{path.relative_to(data_dir)}: {n[:4]!r}…" for n in needles if n in blob]
    return found


def test_no_identifier_in_clear_anywhere_under_the_data_dir(hub: Hub, tmp_path: Path) -> None:
    d = small_delivery(30)
    ingest_batch(hub, d.write(tmp_path / "b", "B"))
    # A rejected batch must not leave identifiers behind either (its staging is encrypted, then removed).
    bad = small_delivery(31)
    bad.rows["ER_PRS_F"][0]["PRS_NAT_REF"] = "7777"
    ingest_batch(hub, bad.write(tmp_path / "c", "C"))
    hub.engine.dispose()
    leaks = scan_data_dir(hub.settings.data_dir, identifiers(d.rows["IR_BEN_R"] + bad.rows["IR_BEN_R"]))
    assert leaks == []


def test_parquet_files_cannot_be_read_without_the_keystore(hub: Hub, tmp_path: Path) -> None:
    ingest_batch(hub, small_delivery().write(tmp_path / "b", "B"))
    files = list(hub.warehouse.directory.rglob("*.parquet"))
    assert files
    for f in files:
        with pytest.raises(OSError):
            pq.read_table(f)
        with pytest.raises(duckdb.Error):
            duckdb.sql(f"SELECT * FROM read_parquet('{f}')").fetchall()
        assert f.read_bytes()[-4:] == b"PARE"  # the Parquet magic of an encrypted footer


def test_parquet_files_do_not_open_with_another_keystore(hub: Hub, tmp_path: Path) -> None:
    ingest_batch(hub, small_delivery().write(tmp_path / "b", "B"))
    other = Hub.init(make_settings(tmp_path / "other"))
    from hygie.warehouse.encryption import ParquetCrypto

    f = next(hub.warehouse.directory.rglob("*.parquet"))
    with pytest.raises(Exception):
        pq.read_table(f, decryption_properties=ParquetCrypto(other.custody).decryption_properties())


def test_warehouse_reads_back_through_duckdb_with_pseudonyms_only(hub: Hub, tmp_path: Path) -> None:
    d = small_delivery()
    ingest_batch(hub, d.write(tmp_path / "b", "B"))
    with hub.session() as session:
        con = hub.warehouse.connect(session)
        rows = con.execute(
            "SELECT p.BEN_NIR_PSA, b.BEN_SEX_COD, p.EXE_SOI_DTD, p.PRS_PAI_MNT "
            "FROM ER_PRS_F p JOIN IR_BEN_R b USING (BEN_NIR_PSA) ORDER BY p.DCT_ORD_NUM"
        ).fetchall()
        bio = con.execute("SELECT count(*) FROM ER_BIO_F").fetchone()
        con.close()
    assert len(rows) == 13 and bio == (1,)
    expected = Pseudonymiser(hub.custody, 1).pseudonym(d.rows["IR_BEN_R"][0]["BEN_NIR"])
    assert rows[0][0] == expected and len(expected) == PSEUDONYM_LENGTH
    assert rows[0][2] == dt.date(2024, 2, 5) and rows[0][3] == pytest.approx(30.0)
    # The vault finds the person from the NIR alone, and their pseudonym from their blind index.
    with hub.session() as session:
        vault = hub.vault(session)
        identity = vault.find(d.rows["IR_BEN_R"][0]["BEN_NIR"])
        index = hub.pseudonymiser.index(d.rows["IR_BEN_R"][0]["BEN_NIR"])
        assert vault.pseudonyms_of([index], 1) == {index: expected}
    assert identity is not None
    assert identity.last_name == d.rows["IR_BEN_R"][0]["NOM"]


def test_pseudonyms_stable_under_one_key_unrelated_under_another(tmp_path: Path) -> None:
    def store(name: str) -> LocalKeystore:
        light = {"kdf_memory_kib": 8192, "kdf_iterations": 1, "kdf_lanes": 1}
        return LocalKeystore.open(tmp_path / name / "keys", passphrase="p", create=True, **light)

    nirs = [p["BEN_NIR"] for p in small_delivery(200).rows["IR_BEN_R"]]
    a1 = Pseudonymiser(store("a"), 1).pseudonyms(nirs)
    a2 = Pseudonymiser(LocalKeystore.open(tmp_path / "a" / "keys", passphrase="p"), 1).pseudonyms(nirs)
    b = Pseudonymiser(store("b"), 1).pseudonyms(nirs)
    assert a1 == a2
    assert len(set(a1)) == len(nirs)
    assert not set(a1) & set(b)
    # Unrelated: matching characters at each position are at chance level (1/32) between the two keys.
    same = sum(x == y for p, q in zip(a1, b, strict=True) for x, y in zip(p, q, strict=True))
    assert same / (len(nirs) * PSEUDONYM_LENGTH) < 0.08
