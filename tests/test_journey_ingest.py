# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The operator's journey, end to end through the CLI: init, synth, ingest (twice), stats; then the byte scan."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hygie.cli import app
from tests.conftest import TEST_PASSPHRASE
from tests.ingest.test_security import scan_data_dir

LIGHT_KDF = {"HYGIE_KDF_MEMORY_KIB": "8192", "HYGIE_KDF_ITERATIONS": "1", "HYGIE_KDF_LANES": "1"}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {"HYGIE_DATA_DIR": str(tmp_path / "hub"), "HYGIE_KEY_PASSPHRASE": TEST_PASSPHRASE, **LIGHT_KDF}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


def test_init_synth_ingest_stats_and_no_identifier_in_clear(tmp_path: Path, env: dict[str, str]) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["init"]).exit_code == 0
    out = tmp_path / "deliveries"
    synth = runner.invoke(app, ["synth", "--people", "400", "--years", "1", "--seed", "5", "--out", str(out)])
    assert synth.exit_code == 0, synth.output

    first = runner.invoke(app, ["ingest", str(out), "--json"])
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert {b["status"] for b in report["batches"]} == {"accepted"}
    delivered: dict[str, int] = {}
    for b in report["batches"]:
        for table, n in b["rows"].items():
            delivered[table] = delivered.get(table, 0) + n

    again = runner.invoke(app, ["ingest", str(out), "--json"])
    assert again.exit_code == 0
    assert {b["status"] for b in json.loads(again.stdout)["batches"]} == {"duplicate"}

    stats = json.loads(runner.invoke(app, ["warehouse", "stats", "--json"]).stdout)
    assert stats["tables"] == dict(sorted(delivered.items()))
    assert stats["identities"] == 400

    needles: list[bytes] = []
    with (out / "000-beneficiaries" / "IR_BEN_R.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            for field in ("BEN_NIR", "EMAIL", "TELEPHONE", "ADRESSE"):
                if row[field]:
                    needles.append(row[field].encode())
            needles.append(row["BEN_NIR"][:13].encode())
            needles.append(f"{row['PRENOM']} {row['NOM']}".encode())
            needles.append(f"{row['NOM']},{row['PRENOM']}".encode())
    assert len(needles) > 2000
    assert scan_data_dir(Path(env["HYGIE_DATA_DIR"]), needles) == []


def test_bad_batch_exit_status_and_json_errors(tmp_path: Path, env: dict[str, str]) -> None:
    runner = CliRunner()
    runner.invoke(app, ["init"])
    out = tmp_path / "deliveries"
    runner.invoke(app, ["synth", "--people", "50", "--years", "1", "--seed", "2", "--out", str(out)])
    ben = out / "000-beneficiaries" / "IR_BEN_R.csv"
    lines = ben.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    cells = next(csv.reader([lines[3]]))
    cells[header.index("DATE_NAISSANCE")] = "2001-13-45"
    lines[3] = ",".join(f'"{c}"' if "," in c else c for c in cells)
    ben.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["ingest", str(out / "000-beneficiaries"), "--json"])
    assert result.exit_code == 1
    batch = json.loads(result.stdout)["batches"][0]
    assert batch["status"] == "rejected"
    assert any(e["file"] == "IR_BEN_R.csv" and e["line"] is None and "checksum" in e["reason"] for e in batch["errors"])
    assert any(e["line"] == 4 and e["field"] == "DATE_NAISSANCE" for e in batch["errors"]), batch["errors"]


def test_warehouse_verify_detects_an_altered_file(tmp_path: Path, env: dict[str, str]) -> None:
    from tests.delivery import small_delivery

    runner = CliRunner()
    runner.invoke(app, ["init"])
    folder = small_delivery().write(tmp_path / "b", "B")
    assert runner.invoke(app, ["ingest", str(folder)]).exit_code == 0
    assert runner.invoke(app, ["warehouse", "verify"]).exit_code == 0
    victim = next((Path(env["HYGIE_DATA_DIR"]) / "warehouse").rglob("*.parquet"))
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    result = runner.invoke(app, ["warehouse", "verify"])
    assert result.exit_code == 1
    assert victim.name in result.output
