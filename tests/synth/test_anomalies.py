# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Injected anomalies (issue 17, item 2): every kind at its rate, seeded, the truth apart from the delivery, the
batches sealed again; bad input refused clearly."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hygie.cli import app
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
