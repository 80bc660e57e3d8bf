# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Injected anomalies (issue 17, item 2): every kind at its rate, seeded, the truth apart from the delivery, the
batches sealed again; bad input refused clearly."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hygie.cli import app
from hygie.synth import generate
from hygie.synth.anomalies import KINDS, RESUBMITTED_BATCH, AnomalyError, inject, parse_rates


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def test_the_cli_injects_every_kind_with_its_truth_apart_and_the_same_seed_gives_the_same_bytes(tmp_path: Path) -> None:
    runner = CliRunner()
    runs = []
    for name in ("a", "b"):
        out, truth = tmp_path / name / "delivery", tmp_path / name / "truth.json"
        args = ["synth", "--out", str(out), "--people", "400", "--years", "1", "--seed", "7", "--start-year", "2024",
                "--anomaly", "all", "--anomaly", "paper=0.02", "--truth", str(truth)]  # fmt: skip
        done = runner.invoke(app, args)
        assert done.exit_code == 0, done.output
        runs.append((out, truth))
    (out, truth), (out_b, truth_b) = runs
    assert _digest(out) == _digest(out_b) and truth.read_bytes() == truth_b.read_bytes()
    found = json.loads(truth.read_text())
    assert found["seed"] == 7 and found["rates"]["paper"] == 0.02
    assert all(found["counts"][kind] >= 1 for kind in KINDS), found["counts"]
    assert found["counts"]["paper"] == 8  # 400 people x 0.02, in rings of four
    # Nothing of the truth in the delivery: no file named so, and its batches' manifests vouch for their files.
    assert not list(out.rglob("*truth*"))
    for manifest in out.glob("*/manifest.json"):
        for entry in json.loads(manifest.read_text())["files"]:
            data = (manifest.parent / entry["name"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
            assert data.count(b"\n") - 1 == entry["rows"]
    resubmitted = json.loads((out / RESUBMITTED_BATCH / "manifest.json").read_text())
    assert resubmitted["producer"] != "CNAM-SYNTH"  # duplicates come from another producer, in another batch
    assert resubmitted["files"][0]["rows"] == found["counts"]["duplicate"]
    ben = (out / "000-beneficiaries" / "IR_BEN_R.csv").read_text()
    for item in found["anomalies"]:
        if item["kind"] in ("after_death", "paper"):
            assert item["nir"] in ben
        if item["kind"] == "after_death":
            assert item["lines_after"] >= 1


def test_bad_input_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(AnomalyError, match="unknown anomaly kind 'ghosts'"):
        parse_rates(["ghosts=0.1"])
    with pytest.raises(AnomalyError, match="between 0 and 1"):
        parse_rates(["volume=3"])
    with pytest.raises(AnomalyError, match="no synthetic delivery"):
        inject(tmp_path, tmp_path.parent / "t.json", seed=1)
    with pytest.raises(AnomalyError, match="outside the delivery"):
        inject(tmp_path, tmp_path / "t.json", seed=1)
    done = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "d"), "--people", "5", "--anomaly", "all"])
    assert done.exit_code != 0 and "--truth" in done.output


def test_combined_outliers_leave_the_other_kinds_as_they_were_and_add_no_other_anomaly(tmp_path: Path) -> None:
    """The combined kind draws last with a generator of its own: the other kinds' truth is the same with it or
    without it. Its copies are no duplicate (a second line of one patient, provider and day) and fall on no day of
    someone dead."""
    truths = {}
    for rate in (0.0, 0.1):
        out, truth = tmp_path / str(rate) / "delivery", tmp_path / str(rate) / "truth.json"
        generate(out, people=1200, years=1, seed=17, start_year=2024)
        inject(out, truth, seed=17, rates={"outlier_combined": rate})
        truths[rate] = json.loads(truth.read_text())
    without, with_ = ([i for i in truths[r]["anomalies"] if i["kind"] != "outlier_combined"] for r in (0.0, 0.1))
    assert without == with_ and truths[0.0]["counts"]["outlier_combined"] == 0
    combined = {i["provider"]: i for i in truths[0.1]["anomalies"] if i["kind"] == "outlier_combined"}
    assert len(combined) >= 2 and all(i["lines_copied"] > 0 for i in combined.values())
    assert not set(combined) & {i.get("provider") for i in with_}  # one physician, one kind's truth
    out = tmp_path / "0.1" / "delivery"
    rows = [r for f in sorted(out.glob("flow-*/ER_PRS_F.csv")) for r in csv.DictReader(f.open(encoding="utf-8"))]
    dead = {r["BEN_NIR"]: r["BEN_DCD_DTE"] for r in csv.DictReader((out / "000-beneficiaries" / "IR_BEN_R.csv").open())
            if r["BEN_DCD_DTE"]}  # fmt: skip
    seen: set[tuple[str, ...]] = set()
    for r in rows:
        if r["PFS_EXE_NUM"] in combined and r["BSE_REM_SGN"] == "1":
            key = (r["BEN_NIR"], r["PFS_EXE_NUM"], r["EXE_SOI_DTD"], r["PRS_NAT_REF"])
            assert key not in seen, key
            seen.add(key)
            assert r["BEN_NIR"] not in dead or r["EXE_SOI_DTD"] <= dead[r["BEN_NIR"]]
