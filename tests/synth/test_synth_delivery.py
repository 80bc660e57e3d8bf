# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The delivery format: folders, manifests, headers, schema-valid values, determinism."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from hygie.ingest.contract import BENEFICIARY_TABLE, CARE_TABLE, DETAIL_TABLES, MANIFEST, TABLES
from hygie.synth import SynthSummary, generate

from .checks import Delivery, check_value
from .conftest import PEOPLE, SEED, START, YEARS

CARE_TABLES = (CARE_TABLE, *DETAIL_TABLES)


def _expected_batches() -> list[str]:
    months = [f"flow-{START + m // 12}-{m % 12 + 1:02d}" for m in range(12 * YEARS)]
    return ["000-beneficiaries", *months]


def test_batch_folders_and_summary(
    generated: tuple[Path, SynthSummary, list[tuple[int, int]]], delivery: Delivery
) -> None:
    out, summary, _ = generated
    assert [p.name for p in summary.batches] == _expected_batches()
    assert all(p.parent == out for p in summary.batches)
    assert sorted(p.name for p in out.iterdir()) == _expected_batches()
    assert summary.people == PEOPLE
    assert summary.rows[BENEFICIARY_TABLE] == PEOPLE
    for table in CARE_TABLES:
        assert summary.rows[table] == len(delivery.table(table)) > 0
    assert summary.deaths == sum(1 for r in delivery.table(BENEFICIARY_TABLE) if r["BEN_DCD_DTE"])


def test_progress_reports_every_chunk(generated: tuple[Path, SynthSummary, list[tuple[int, int]]]) -> None:
    calls = generated[2]
    assert calls and calls[-1] == (PEOPLE, PEOPLE)
    done = [d for d, _ in calls]
    assert done == sorted(done) and all(t == PEOPLE for _, t in calls)


def test_manifests_match_files(generated: tuple[Path, SynthSummary, list[tuple[int, int]]]) -> None:
    out = generated[0]
    for folder in sorted(out.iterdir()):
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        assert list(manifest) == ["producer", "batch_id", "created_at", "files"]
        assert manifest["producer"] == "CNAM-SYNTH"
        assert manifest["batch_id"] == f"CNAM-SYNTH-{folder.name}-s{SEED}"
        created = datetime.fromisoformat(manifest["created_at"].replace("Z", "+00:00"))
        assert created.utcoffset() == timedelta(0)
        expected = [BENEFICIARY_TABLE] if folder.name.startswith("000") else list(CARE_TABLES)
        assert [f["name"] for f in manifest["files"]] == [f"{t}.csv" for t in expected]
        assert sorted(p.name for p in folder.iterdir()) == sorted([MANIFEST, *(f"{t}.csv" for t in expected)])
        for entry in manifest["files"]:
            data = (folder / entry["name"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
            assert data.endswith(b"\n") and b"\r" not in data
            assert data.count(b"\n") - 1 == entry["rows"]  # no value holds a line break


def test_headers_are_the_contract(delivery: Delivery) -> None:
    for (_, table), header in delivery.headers.items():
        assert tuple(header) == TABLES[table].columns


def test_required_columns_filled(delivery: Delivery) -> None:
    for (_, table), rows in delivery.rows.items():
        for row in rows:
            missing = [c for c in TABLES[table].required if row[c] == ""]
            assert not missing, (table, missing)


def test_values_follow_the_schema_and_code_lists(delivery: Delivery) -> None:
    distinct: dict[tuple[str, str], set[str]] = {}
    for (_, table), rows in delivery.rows.items():
        for column in TABLES[table].columns:
            distinct.setdefault((table, column), set()).update(r[column] for r in rows)
    problems: dict[tuple[str, str, str], str] = {}
    for (table, column), values in distinct.items():
        for value in values:
            reason = check_value(table, column, value)
            if reason:
                problems.setdefault((table, column, reason), value)
    assert not problems


def test_csv_is_what_the_csv_module_writes(generated: tuple[Path, SynthSummary, list[tuple[int, int]]]) -> None:
    import csv
    import io

    out = generated[0]
    for path in [out / "000-beneficiaries" / "IR_BEN_R.csv", *sorted(out.glob("flow-2023-0[1-3]/*.csv"))]:
        text = path.read_text(encoding="utf-8")
        rows = list(csv.reader(io.StringIO(text)))
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        assert buf.getvalue() == text, path


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", people=300, years=1, seed=5)
    b = generate(tmp_path / "b", people=300, years=1, seed=5)
    c = generate(tmp_path / "c", people=300, years=1, seed=6)
    da, db, dc = _digests(tmp_path / "a"), _digests(tmp_path / "b"), _digests(tmp_path / "c")
    assert da == db
    assert a.rows == b.rows
    # Manifests differ by batch_id anyway; the data files must differ too.
    for name in ("000-beneficiaries/IR_BEN_R.csv", "flow-2023-06/ER_PRS_F.csv", "flow-2023-06/ER_PHA_F.csv"):
        assert da[name] != dc[name]
    assert c.rows != a.rows or da != dc


def test_rerun_into_same_folder_rewrites_it(tmp_path: Path) -> None:
    generate(tmp_path, people=200, years=1, seed=1)
    first = _digests(tmp_path)
    generate(tmp_path, people=200, years=1, seed=1)
    assert _digests(tmp_path) == first


def test_refuses_to_mix_with_another_runs_batches(tmp_path: Path) -> None:
    (tmp_path / "flow-2019-03").mkdir()
    with pytest.raises(FileExistsError):
        generate(tmp_path, people=10, years=1, seed=1)
    assert not (tmp_path / "000-beneficiaries").exists()


def test_rejects_nonsense_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate(tmp_path, people=0, years=1, seed=1)
    with pytest.raises(ValueError):
        generate(tmp_path, people=10, years=0, seed=1)
    with pytest.raises(ValueError):
        generate(tmp_path, people=10, years=1, seed=-1)
