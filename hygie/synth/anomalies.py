# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Known anomalies injected into a synthetic delivery, and the truth written apart, to measure control rules.

Each kind is injected at a stated rate with a seed, after :func:`hygie.synth.generate` wrote the delivery; the
batches it touches are sealed again (rows and SHA-256 in their manifest). The truth goes to a separate JSON file
that is never inside the delivery folder: what was injected, by whom and for whom, in the delivery's own (clear,
synthetic) numbers. Kinds, one per rule family of :mod:`hygie.control.rules`:

- ``after_death``: a beneficiary with care over several months is declared dead more than a month before their last
  care (their care and dispensing then fall after death); rate = share of beneficiaries with such care;
- ``volume``: a physician bills ``VOLUME_ACTS`` consultations on one day they worked (copies of their own patients'
  consultations); rate = share of physicians;
- ``duplicate``: a consultation billed again, with new claim keys, in a later batch of another producer; rate =
  share of consultation and visit lines;
- ``outlier``: a physician's amounts multiplied by ``OUTLIER_FACTOR``; rate = share of physicians with enough acts;
- ``outlier_combined``: a physician unusual in combination, each metric raised moderately: amounts multiplied by
  ``COMBINED_FACTOR`` and every line of theirs billed ``COMBINED_FACTOR`` times in all (copies for the same patient
  on earlier days they did not work), so amount per act and acts per patient are both about ``COMBINED_FACTOR``
  times their own (a robust z near 4 each against peers at the median, under the univariate rule's 8); patients
  per day are left alone. Rate = share of physicians with enough acts, drawn after every other kind (with a
  generator of its own: the other kinds' draws do not change) among physicians no other kind touches;
- ``paper``: rings of ``RING_SIZE`` beneficiaries who exist only on paper (a new NIR each, one shared phone and
  address in the ring) billed consultations by one physician and nothing else; rate = phantoms per beneficiary.

Reads the delivery's CSV into memory: meant for test and benchmark hubs of up to a few hundred thousand people.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from hygie.ingest.contract import BENEFICIARY_TABLE, CARE_TABLE, MANIFEST, NIR_COLUMN, TABLES

KINDS = ("after_death", "volume", "duplicate", "outlier", "outlier_combined", "paper")
DEFAULT_RATES: dict[str, float] = {
    "after_death": 0.01,
    "volume": 0.03,
    "duplicate": 0.005,
    "outlier": 0.1,
    "outlier_combined": 0.1,
    "paper": 0.01,
}
VOLUME_ACTS = 90
"""Consultations billed on the impossible day: beyond any physician's day (the rules' cap is 60 by default)."""
OUTLIER_FACTOR = 6.0
OUTLIER_MIN_ACTS = 20
OUTLIER_SHARE_MAX = 5
"""At most one injected outlier (of either outlier kind) per this many busy physicians of a specialty (a median of
outliers is no peer)."""
COMBINED_FACTOR = 3.0
"""Amounts and lines of a combined outlier, against their own: with the rules' spread floor (half the peers' median)
a metric three times the median is 4 robust deviations above it, twice the multivariate rule's 3 and half the
univariate rule's 8."""
COMBINED_MAX_DAILY = 30
"""A copy never makes a day of the physician's exceed this many lines (half the volume rule's default cap)."""
COMBINED_MAX_SHIFT = 60
"""Days back a copy may be moved to find a day the physician did not work (within the year of the original)."""
RING_SIZE = 4
RING_VISITS = (3, 6)
CONSULTATION = (1100, 1299)
"""PRS_NAT_REF of consultations and visits: what the volume, duplicate and paper kinds bill."""
PHYSICIAN_DIGIT = "1"
"""Third character of a physician's number (after the département): see hygie.synth.providers.KindInfo."""
RESUBMITTED_BATCH = "900-resubmitted"
"""The batch of duplicated claims, sent by another producer; its name sorts before the monthly flows."""
KEY_SPACE = 90_000_000
"""DCT_ORD_NUM of injected lines start here: never one of a generated claim (8 digits, counted from 0)."""
AMOUNTS = ("PRS_PAI_MNT", "BSE_REM_BSE", "BSE_REM_MNT", "BSE_REM_PRU")


class AnomalyError(ValueError):
    """Injection refused: the message says why."""


@dataclass(frozen=True)
class Injected:
    counts: dict[str, int]
    truth: Path


@dataclass
class _Table:
    """One CSV of a batch, held as rows of strings."""

    path: Path
    header: list[str]
    rows: list[list[str]]

    @classmethod
    def read(cls, path: Path) -> _Table:
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            header = next(reader)
            return cls(path, header, list(reader))

    def col(self, name: str) -> int:
        return self.header.index(name)

    def write(self) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.header)
        writer.writerows(self.rows)
        self.path.write_bytes(buf.getvalue().encode("utf-8"))


def _reseal(folder: Path) -> None:
    """Rows and SHA-256 of every file in the batch's manifest, again (after its files changed)."""
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    for entry in manifest["files"]:
        data = (folder / entry["name"]).read_bytes()
        entry["rows"] = max(data.count(b"\n") - 1, 0)
        entry["sha256"] = hashlib.sha256(data).hexdigest()
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)


def parse_rates(specs: list[str]) -> dict[str, float]:
    """``KIND=RATE`` items (or ``all``) as rates: every kind not named stays at 0 unless ``all`` is given."""
    rates: dict[str, float] = {}
    for spec in specs:
        if spec == "all":
            rates = {**DEFAULT_RATES, **rates}
            continue
        kind, sep, value = spec.partition("=")
        if kind not in KINDS:
            raise AnomalyError(f"unknown anomaly kind {kind!r}; known: {', '.join(KINDS)} (or 'all')")
        try:
            rate = float(value) if sep else DEFAULT_RATES[kind]
        except ValueError:
            raise AnomalyError(f"the rate of {kind} must be a number between 0 and 1, not {value!r}") from None
        if not 0.0 <= rate <= 1.0:
            raise AnomalyError(f"the rate of {kind} must be between 0 and 1")
        rates[kind] = rate
    if rates:
        rates = {kind: rates.get(kind, 0.0) for kind in KINDS}
    return rates


def _nir_key(first13: str) -> int:
    number = int(first13.replace("2A", "19", 1) if first13[5:7] == "2A" else first13.replace("2B", "18", 1)
                 if first13[5:7] == "2B" else first13)  # fmt: skip
    return 97 - number % 97


def _day(value: str) -> date:
    return date.fromisoformat(value)


def _neutralise(
    ben: _Table,
    b: dict[str, int],
    care: dict[Path, _Table],
    c: dict[str, int],
    is_consultation: Callable[[list[str]], bool],
) -> dict[str, int]:
    """Remove what the generator's own model makes that a rule would rightly flag, so the truth is complete:
    care after a recorded death (the death is removed: the person lived on) and a second identical consultation
    the same day (moved to an earlier free day). Counted in the truth file."""
    last_care: dict[str, str] = {}
    for t in care.values():
        for r in t.rows:
            nir = r[c[NIR_COLUMN]]
            last_care[nir] = max(last_care.get(nir, ""), r[c["EXE_SOI_DTD"]])
    revived = 0
    for r in ben.rows:
        death = r[b["BEN_DCD_DTE"]]
        if death and last_care.get(r[b[NIR_COLUMN]], "") > death:
            r[b["BEN_DCD_DTE"]] = r[b["BEN_DCD_AME"]] = ""
            revived += 1
    taken: set[tuple[str, ...]] = set()
    moved = 0
    for t in care.values():
        for r in t.rows:
            if not is_consultation(r):
                continue
            key = (r[c[NIR_COLUMN]], r[c["PFS_EXE_NUM"]], r[c["PRS_NAT_REF"]], r[c["PRS_PAI_MNT"]])
            day = _day(r[c["EXE_SOI_DTD"]])
            if (*key, day.isoformat()) in taken:
                while (*key, day.isoformat()) in taken:
                    day -= timedelta(days=1)
                r[c["EXE_SOI_DTD"]] = r[c["EXE_SOI_DTF"]] = day.isoformat()
                r[c["EXE_SOI_AMD"]] = day.isoformat()[:7]
                moved += 1
            taken.add((*key, day.isoformat()))
    return {"after_death": revived, "duplicate": moved}


def _combine(
    provider: str,
    care: dict[Path, _Table],
    c: dict[str, int],
    gone: set[str],
    fresh: Callable[[list[str]], list[str]],
    added: dict[Path, list[list[str]]],
) -> int:
    """Make ``provider`` a combined outlier (see ``outlier_combined``); returns the lines copied. A copy goes to an
    earlier day of the same year when the physician did not see that patient (no duplicate), preferably a day
    they did not work (their patients per day stay theirs), never beyond ``COMBINED_MAX_DAILY`` lines that day;
    a line of someone dead, or made dead by another kind, is not copied (no care after death)."""
    mine = [(f, r) for f, t in care.items() for r in t.rows if r[c["PFS_EXE_NUM"]] == provider]
    for _f, r in mine:
        for name in AMOUNTS:
            if r[c[name]]:
                r[c[name]] = f"{float(r[c[name]]) * COMBINED_FACTOR:.2f}"
    daily: dict[str, int] = defaultdict(int)
    seen: set[tuple[str, str]] = set()
    for _f, r in mine:
        daily[r[c["EXE_SOI_DTD"]]] += 1
        seen.add((r[c[NIR_COLUMN]], r[c["EXE_SOI_DTD"]]))
    copied = 0
    for f, r in mine:
        nir = r[c[NIR_COLUMN]]
        if r[c["BSE_REM_SGN"]] != "1" or nir in gone:
            continue
        for _ in range(round(COMBINED_FACTOR) - 1):
            day = _copy_day(_day(r[c["EXE_SOI_DTD"]]), nir, daily, seen)
            if day is None:
                break
            new = fresh(r)
            new[c["EXE_SOI_DTD"]] = new[c["EXE_SOI_DTF"]] = day
            new[c["EXE_SOI_AMD"]] = day[:7]
            added[f].append(new)
            daily[day] += 1
            seen.add((nir, day))
            copied += 1
    return copied


def _copy_day(start: date, nir: str, daily: dict[str, int], seen: set[tuple[str, str]]) -> str | None:
    earlier = (start - timedelta(days=d) for d in range(1, COMBINED_MAX_SHIFT + 1))
    days = [d.isoformat() for d in earlier if d.year == start.year]
    open_days = [d for d in days if (nir, d) not in seen and daily.get(d, 0) < COMBINED_MAX_DAILY]
    return next((d for d in open_days if d not in daily), open_days[0] if open_days else None)


def inject(
    delivery: Path,
    truth: Path,
    *,
    seed: int,
    rates: Mapping[str, float] | None = None,
    producer: str = "CNAM-SYNTH",
) -> Injected:
    """Inject every kind at its rate (``DEFAULT_RATES`` for kinds not given) and write the truth to ``truth``."""
    delivery, truth = Path(delivery).resolve(), Path(truth).resolve()
    if truth.is_relative_to(delivery):
        raise AnomalyError("the truth file must be written outside the delivery folder")
    rates = {**DEFAULT_RATES, **(rates or {})}
    unknown = sorted(set(rates) - set(KINDS))
    if unknown:
        raise AnomalyError(f"unknown anomaly kind {', '.join(unknown)}; known: {', '.join(KINDS)}")
    if any(not 0.0 <= r <= 1.0 for r in rates.values()):
        raise AnomalyError("anomaly rates are fractions between 0 and 1")
    ben_dir = delivery / "000-beneficiaries"
    flows = sorted(p for p in delivery.iterdir() if p.name.startswith("flow-") and (p / MANIFEST).exists())
    if not (ben_dir / MANIFEST).exists() or not flows:
        raise AnomalyError(f"{delivery} holds no synthetic delivery (run hygie synth first)")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xA40]))
    ben = _Table.read(ben_dir / f"{BENEFICIARY_TABLE}.csv")
    care = {f: _Table.read(f / f"{CARE_TABLE}.csv") for f in flows}
    header = next(iter(care.values())).header
    c = {name: header.index(name) for name in header}
    b = {name: ben.header.index(name) for name in ben.header}
    # Positive consultation lines by physician, and every line by beneficiary: (batch, row index).
    lines = [(f, i) for f, t in care.items() for i in range(len(t.rows))]

    def row(ref: tuple[Path, int]) -> list[str]:
        return care[ref[0]].rows[ref[1]]

    def is_consultation(r: list[str]) -> bool:
        nat = int(r[c["PRS_NAT_REF"]])
        return CONSULTATION[0] <= nat <= CONSULTATION[1] and r[c["BSE_REM_SGN"]] == "1"

    by_physician: dict[str, list[tuple[Path, int]]] = defaultdict(list)
    by_person: dict[str, list[tuple[Path, int]]] = defaultdict(list)
    for ref in lines:
        r = row(ref)
        by_person[r[c[NIR_COLUMN]]].append(ref)
        provider = r[c["PFS_EXE_NUM"]]
        if provider[2:3] == PHYSICIAN_DIGIT and is_consultation(r):
            by_physician[provider].append(ref)
    neutralised = _neutralise(ben, b, care, c, is_consultation)
    physicians = sorted(by_physician)
    dead = {r[b[NIR_COLUMN]] for r in ben.rows if r[b["BEN_DCD_DTE"]]}
    """People who died: no injected care of another kind for them (it would be care after death too)."""
    all_consultations = [ref for p in physicians for ref in by_physician[p]]
    counter = iter(range(KEY_SPACE, KEY_SPACE + 9_999_999))
    truth_rows: list[dict[str, Any]] = []
    added: dict[Path, list[list[str]]] = defaultdict(list)

    def fresh(r: list[str]) -> list[str]:
        out = list(r)
        out[c["DCT_ORD_NUM"]] = str(next(counter))
        out[c["PRS_ORD_NUM"]] = "1"
        return out

    def pick(pool: list[Any], rate: float) -> list[Any]:
        n = round(rate * len(pool))
        if rate > 0 and pool:
            n = max(n, 1)
        chosen: list[int] = rng.choice(len(pool), size=min(n, len(pool)), replace=False).tolist() if n else []
        return [pool[i] for i in sorted(chosen)]

    # Outliers and volume first pick physicians apart, so that one physician is one kind's truth only.
    # Outliers: at most one in OUTLIER_SHARE_MAX of a specialty's busy physicians, so peers stay a majority.
    busy_by_specialty: dict[str, list[str]] = defaultdict(list)
    for p in physicians:
        if len(by_physician[p]) >= OUTLIER_MIN_ACTS:
            busy_by_specialty[row(by_physician[p][0])[c["PSE_SPE_COD"]]].append(p)
    outliers: list[str] = []
    for specialty in sorted(busy_by_specialty):
        peers = busy_by_specialty[specialty]
        allowed = len(peers) // OUTLIER_SHARE_MAX
        if allowed:
            outliers += pick(peers, rates["outlier"])[:allowed]
    remaining = [p for p in physicians if p not in set(outliers)]
    heavy = pick(remaining, rates["volume"])
    remaining = [p for p in remaining if p not in set(heavy)]

    for provider in outliers:
        for t in care.values():
            for r in t.rows:
                if r[c["PFS_EXE_NUM"]] == provider:
                    for name in AMOUNTS:
                        if r[c[name]]:
                            r[c[name]] = f"{float(r[c[name]]) * OUTLIER_FACTOR:.2f}"
        truth_rows.append({"kind": "outlier", "provider": provider, "factor": OUTLIER_FACTOR})

    for provider in heavy:
        refs = by_physician[provider]
        anchor = row(refs[int(rng.integers(len(refs)))])
        f = next(ref[0] for ref in refs if row(ref) is anchor)
        day = anchor[c["EXE_SOI_DTD"]]
        # One consultation per patient (no duplicate among them): patients of any physician, seen by this one.
        seen = {row(ref)[c[NIR_COLUMN]] for ref in refs if row(ref)[c["EXE_SOI_DTD"]] == day}
        patients = [ref for ref in all_consultations if row(ref)[c[NIR_COLUMN]] not in seen | dead]
        chosen: dict[str, tuple[Path, int]] = {}
        for i in rng.permutation(len(patients)).tolist():
            chosen.setdefault(row(patients[i])[c[NIR_COLUMN]], patients[i])
            if len(chosen) == VOLUME_ACTS:
                break
        for ref in chosen.values():
            new = fresh(row(ref))
            for name in ("PFS_EXE_NUM", "PSE_SPE_COD", "PSE_ACT_NAT"):
                new[c[name]] = anchor[c[name]]
            for name in ("EXE_SOI_DTD", "EXE_SOI_DTF"):
                new[c[name]] = day
            new[c["EXE_SOI_AMD"]] = day[:7]
            for name in ("FLX_DIS_DTD", "FLX_TRT_DTD"):
                new[c[name]] = anchor[c[name]]
            added[f].append(new)
        truth_rows.append({"kind": "volume", "provider": provider, "day": day, "acts": len(chosen)})

    # Duplicates: consultations of physicians not otherwise injected, billed again by another producer.
    spare = set(remaining)
    pool = [ref for p in sorted(spare) for ref in by_physician[p]]
    copies = []
    for ref in pick(pool, rates["duplicate"]):
        original = row(ref)
        new = fresh(original)
        later = _day(original[c["FLX_DIS_DTD"]]) + timedelta(days=35)
        new[c["FLX_DIS_DTD"]] = later.isoformat()
        new[c["FLX_TRT_DTD"]] = (later - timedelta(days=3)).isoformat()
        copies.append(new)
        truth_rows.append({"kind": "duplicate", "nir": original[c[NIR_COLUMN]], "provider": original[c["PFS_EXE_NUM"]],
                           "day": original[c["EXE_SOI_DTD"]], "nature": int(original[c["PRS_NAT_REF"]])})  # fmt: skip

    # Care after death: people alive, with care spread over at least three months.
    alive = {r[b[NIR_COLUMN]]: r for r in ben.rows if not r[b["BEN_DCD_DTE"]]}
    late = []
    for nir, refs in sorted(by_person.items()):
        days = sorted(_day(row(ref)[c["EXE_SOI_DTD"]]) for ref in refs)
        if nir in alive and (days[-1] - days[0]).days >= 90:
            late.append((nir, days))
    for nir, days in pick(late, rates["after_death"]):
        # Dead in the month two months before the last care: the care of the last month is after death even for a
        # project that sees death dates cut to their month.
        last = days[-1].replace(day=1)
        month = (last - timedelta(days=40)).replace(day=1)
        death = month + timedelta(days=int(rng.integers(0, 28)))
        r = alive[nir]
        r[b["BEN_DCD_DTE"]] = death.isoformat()
        r[b["BEN_DCD_AME"]] = death.isoformat()[:7]
        after = sum(1 for d in days if d > death)
        truth_rows.append({"kind": "after_death", "nir": nir, "death": death.isoformat(), "lines_after": after})

    # Patients only on paper: rings around physicians not otherwise injected.
    used = {r[b[NIR_COLUMN]] for r in ben.rows}
    spare_list = sorted(spare - {t["provider"] for t in truth_rows if t["kind"] == "duplicate"})
    phantoms = round(rates["paper"] * len(ben.rows))
    if rates["paper"] > 0 and phantoms == 0:
        phantoms = 1
    rings = (phantoms + RING_SIZE - 1) // RING_SIZE if spare_list else 0
    templates = sorted(nir for nir, r in alive.items() if not r[b["BEN_DCD_DTE"]])  # not those just made dead
    for ring in range(rings):
        provider = spare_list[int(rng.integers(len(spare_list)))]
        refs = by_physician[provider]
        phone = "06 " + " ".join(f"{int(rng.integers(0, 100)):02d}" for _ in range(4))
        address = f"{int(rng.integers(1, 200))}, rue des Peupliers"
        for _ in range(RING_SIZE):
            source = alive[templates[int(rng.integers(len(templates)))]]
            nir = source[b[NIR_COLUMN]]
            while nir in used:
                head = f"{nir[:10]}{int(rng.integers(1, 1000)):03d}"
                nir = f"{head}{_nir_key(head):02d}"
            used.add(nir)
            person = list(source)
            person[b[NIR_COLUMN]] = nir
            person[b["TELEPHONE"]] = phone
            person[b["ADRESSE"]] = address
            person[b["EMAIL"]] = ""
            person[b["BEN_DCD_DTE"]] = person[b["BEN_DCD_AME"]] = ""
            ben.rows.append(person)
            # Visits on distinct days (a second one the same day would also be a duplicate).
            by_day = {row(ref)[c["EXE_SOI_DTD"]]: ref for ref in refs}
            open_days = sorted(by_day)
            visits = int(rng.integers(RING_VISITS[0], RING_VISITS[1] + 1))
            for i in sorted(rng.choice(len(open_days), size=min(visits, len(open_days)), replace=False).tolist()):
                ref = by_day[open_days[i]]
                new = fresh(row(ref))
                new[c[NIR_COLUMN]] = nir
                for name in ("BEN_SEX_COD", "BEN_NAI_ANN", "BEN_RES_DPT", "BEN_RES_COM", "ORG_AFF_BEN"):
                    new[c[name]] = source[b[name]]
                added[ref[0]].append(new)
            truth_rows.append({"kind": "paper", "nir": nir, "provider": provider, "ring": ring})

    # Outliers in combination, last and with a generator of their own, so the kinds above draw as they always did.
    combined_rng = np.random.default_rng(np.random.SeedSequence([seed, 0xA41]))
    touched = {t["provider"] for t in truth_rows if "provider" in t}
    gone = dead | {t["nir"] for t in truth_rows if t["kind"] == "after_death"}
    for specialty in sorted(busy_by_specialty):
        peers = busy_by_specialty[specialty]
        room = len(peers) // OUTLIER_SHARE_MAX - sum(1 for p in peers if p in set(outliers))
        free = [p for p in peers if p not in touched]
        if room <= 0 or not free or rates["outlier_combined"] <= 0:
            continue
        n = min(max(round(rates["outlier_combined"] * len(peers)), 1), room, len(free))
        for i in sorted(combined_rng.choice(len(free), size=n, replace=False).tolist()):
            copied = _combine(free[i], care, c, gone, fresh, added)
            truth_rows.append({"kind": "outlier_combined", "provider": free[i], "factor": COMBINED_FACTOR,
                               "lines_copied": copied})  # fmt: skip

    # Write: the beneficiaries, the touched flows, and the resubmitted batch (or none).
    ben.write()
    _reseal(ben_dir)
    for f, t in care.items():
        t.rows.extend(added.get(f, []))
        t.write()
        _reseal(f)
    resubmitted = delivery / RESUBMITTED_BATCH
    if resubmitted.exists():
        for stale in resubmitted.iterdir():
            stale.unlink()
        resubmitted.rmdir()
    if copies:
        from hygie.synth.writer import Batch

        created = max(r[c["FLX_DIS_DTD"]] for r in copies)
        batch = Batch(delivery, RESUBMITTED_BATCH, f"{producer}-RESUB-s{seed}", f"{created}T05:00:00Z", [CARE_TABLE])
        batch.append_rows(CARE_TABLE, copies)
        batch.finish(f"{producer}-RESUB")
    counts = {kind: sum(1 for t in truth_rows if t["kind"] == kind) for kind in KINDS}
    truth.parent.mkdir(parents=True, exist_ok=True)
    document = {"seed": seed, "rates": rates, "counts": counts, "neutralised": neutralised, "anomalies": truth_rows}
    truth.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    assert set(TABLES[CARE_TABLE].columns) == set(header)
    return Injected(counts, truth)
