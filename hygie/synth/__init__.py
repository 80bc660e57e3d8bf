# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Synthetic national health-insurance claims on the real SNDS schema, delivered as the hub expects them.

``generate`` writes a delivery folder (see :mod:`hygie.ingest.contract`): ``000-beneficiaries/`` with
IR_BEN_R, then one ``flow-YYYY-MM/`` batch per monthly flow with ER_PRS_F and its detail tables. Output is a
pure function of the arguments: the same arguments give the same bytes. People are processed in chunks and
rows appended as they are made, so memory does not grow with the population.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from hygie.ingest.contract import BENEFICIARY_TABLE, CARE_TABLE, DETAIL_TABLES, TABLES

__all__ = ["SynthSummary", "generate"]

BENEFICIARY_BATCH = "000-beneficiaries"
CARE_TABLES = (CARE_TABLE, *DETAIL_TABLES)
_ROWS_PER_CHUNK = 250_000
"""Target care rows per chunk: bounds memory (a few hundred MB at most) whatever the population."""
_ROWS_PER_PERSON_YEAR = 20


class _Stream:
    """Independent random streams, one per purpose and chunk, all derived from the seed."""

    PROVIDERS, PEOPLE, IDENTITY, HEALTH, CARE, FLOWS, EMAIL = range(7)


@dataclass(frozen=True)
class SynthSummary:
    batches: list[Path]
    """Batch folders, in delivery order (beneficiaries first, then flows by month)."""
    rows: dict[str, int]
    """Data rows per table over all batches."""
    people: int
    deaths: int


def _rng(seed: int, stream: int, chunk: int = 0) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, stream, chunk])))


def chunk_size(people: int, years: int) -> int:
    return max(1_000, min(20_000, _ROWS_PER_CHUNK // (_ROWS_PER_PERSON_YEAR * years)))


def _stamp(day: int, hour: int) -> str:
    # Deterministic creation times (from the data's own dates, not the clock) keep the output reproducible.
    d = np.datetime64(day, "D").astype(datetime)
    return datetime(d.year, d.month, d.day, hour, tzinfo=UTC).isoformat().replace("+00:00", "Z")


def generate(
    out_dir: Path,
    *,
    people: int,
    years: int,
    seed: int,
    start_year: int = 2023,
    producer: str = "CNAM-SYNTH",
    progress: Callable[[int, int], None] | None = None,
) -> SynthSummary:
    """Write a synthetic delivery for ``people`` people over ``years`` years from ``start_year``.

    ``progress(done_people, total_people)`` is called after each chunk. Existing batch folders of the same
    names are rewritten (their manifest is removed first); batch folders this run would not write (an earlier
    run over other months) are refused with FileExistsError; anything else in ``out_dir`` is left alone.
    """
    # Imported here: Faker and the reference tables cost half a second, which CLI commands that do not
    # generate anything should not pay.
    from hygie.synth.care import CareModel
    from hygie.synth.conditions import draw_health
    from hygie.synth.dates import Period
    from hygie.synth.flows import FlowRouter
    from hygie.synth.identity import EmailNumbers, draw_identities
    from hygie.synth.nir import NirRegistry
    from hygie.synth.population import draw_people
    from hygie.synth.providers import build_providers
    from hygie.synth.render import Renderer, beneficiary_rows
    from hygie.synth.writer import Batch

    if people < 1 or years < 1:
        raise ValueError("people and years must be at least 1")
    if seed < 0:
        raise ValueError("seed must be a non-negative integer")
    if start_year < 1950 or start_year + years > 2200:
        raise ValueError("start_year out of range")
    out_dir = Path(out_dir)
    period = Period(start_year, years)

    def batch_id(name: str) -> str:
        return f"{producer}-{name}-s{seed}"

    planned = {BENEFICIARY_BATCH} | {
        f"flow-{period.month_label(m)}" for m in range(period.first_month, period.first_month + period.months)
    }
    if out_dir.is_dir():
        stale = sorted(
            p.name
            for p in out_dir.iterdir()
            if p.is_dir() and (p.name.startswith("flow-") or p.name == BENEFICIARY_BATCH) and p.name not in planned
        )
        if stale:
            # Left in place they would be ingested with this run's batches as one delivery.
            raise FileExistsError(
                f"{out_dir} holds batches of another run ({', '.join(stale[:3])}...); use an empty folder"
            )

    beneficiaries = Batch(
        out_dir, BENEFICIARY_BATCH, batch_id(BENEFICIARY_BATCH), _stamp(period.cutoff + 1, 0), [BENEFICIARY_TABLE]
    )
    flows: dict[int, Batch] = {}
    for month in range(period.first_month, period.first_month + period.months):
        name = f"flow-{period.month_label(month)}"
        next_month_first = int(np.datetime64(month + 1, "M").astype("datetime64[D]").astype(np.int64))
        flows[month] = Batch(out_dir, name, batch_id(name), _stamp(next_month_first, 4), CARE_TABLES)

    providers = build_providers(_rng(seed, _Stream.PROVIDERS), people)
    care = CareModel(period, providers)
    router = FlowRouter(period)
    renderer = Renderer(period, providers)
    registry = NirRegistry()
    emails = EmailNumbers.draw(_rng(seed, _Stream.EMAIL), people)
    size = chunk_size(people, years)
    deaths = 0
    done = 0
    for chunk, first in enumerate(range(0, people, size)):
        n = min(size, people - first)
        folk = draw_people(_rng(seed, _Stream.PEOPLE, chunk), period, first, n, registry)
        faker_seed = int(np.random.SeedSequence([seed, _Stream.IDENTITY, chunk]).generate_state(1)[0])
        ids = draw_identities(_rng(seed, _Stream.IDENTITY, chunk), faker_seed, folk, emails)
        beneficiaries.append_rows(BENEFICIARY_TABLE, beneficiary_rows(folk, ids))
        deaths += int((folk.death_day >= 0).sum())

        health = draw_health(_rng(seed, _Stream.HEALTH, chunk), folk, providers)
        lines = care.draw(_rng(seed, _Stream.CARE, chunk), folk, health)
        delivered = router.route(_rng(seed, _Stream.FLOWS, chunk), lines)
        for rendered in renderer.render(folk, delivered):
            for month, text in rendered.by_month():
                flows[month].append_lines(rendered.table, text)
        done += n
        if progress is not None:
            progress(done, people)

    batches = [beneficiaries, *(flows[m] for m in sorted(flows))]
    for b in batches:
        b.finish(producer)
    rows = {t: sum(b.rows(t) for b in batches if t in b.files) for t in TABLES}
    return SynthSummary(batches=[b.folder for b in batches], rows=rows, people=people, deaths=deaths)
