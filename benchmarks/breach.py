# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Breach matching: a 491,840-row leak matched against a large identity vault, beside a plain DuckDB join.

    uv run python benchmarks/breach.py [--people 10000000] [--leak 491840] [--seed 5] [--work /tmp/hygie-breach-bench]

The vault is built once per size and reused (``<work>/hub-<people>``): synthetic people are generated with numpy
and pyarrow (names from Faker's French lists, real communes, valid NIR keys, unique NIRs), sealed with
``IdentityVault.seal`` and inserted with ``IdentityVault.store`` exactly as ingestion does, and indexed for
blocking in the same pass from the same clear columns (``hygie.breach.blocking.index_people``, its ``block``
index dropped during the load and rebuilt once). The clear population is never written to disk:
each run regenerates it from the seed, in memory, for the leak and the baseline.

The leak (``hygie.breach.synthetic.make_leak``) carries the tests' damage: typos, swapped and re-cased names, 20 %
missing NIRs, NIRs mangled by a spreadsheet, postcodes without their zero, three date forms, outsiders (people not
in the vault), duplicate rows, conflicting rows (one person's NIR with another's name) and a row without any
identifier. It is imported as a cp1252 ';' CSV through ``Incidents.import_file`` (read, map, match, store the
outcomes), then rolled back so the hub stays reusable.

Baseline, same process, same people held in clear in memory: DuckDB joins the leak's raw cells on the NIR, else on
upper-cased last name, first name and ISO birth date — no repair, no fuzziness, no keys, no decryption.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hygie  # noqa: F401  (first: it sets Arrow's allocator options, which pyarrow reads once, as it loads)

# isort: split

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from faker import Faker
from faker.providers.person.fr_FR import Provider as PersonProvider
from sqlalchemy import select, update

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import cpu_model
from hygie.breach import blocking
from hygie.breach.matcher import Status
from hygie.breach.models import BreachBlockState
from hygie.breach.service import Incidents
from hygie.breach.synthetic import make_leak
from hygie.config import Settings
from hygie.hub import Hub
from hygie.identity.nir import is_valid_nir
from hygie.identity.pseudonym import Pseudonymiser
from hygie.identity.vault import IdentityVault
from hygie.synth.codes import communes_by_department
from hygie.synth.geography import postal_code

CHUNK = 500_000
LEAK_SIZE = 491_840
PASSPHRASE = "benchmark passphrase"


def _cpu_seconds() -> float:
    mine, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime


# -- a synthetic population, vectorised --------------------------------------------------------------------------


def _ascii(s: str) -> str:
    plain = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()
    return "".join(c for c in plain.lower() if c.isalnum())


@dataclass
class Places:
    """Metropolitan communes (overseas and foreign births are left out: their NIR place codes differ)."""

    dep: pa.Array  # the NIR's two département characters: "01".."95", "2A", "2B"
    dep_num: np.ndarray[Any, Any]  # their value in the key computation (2A = 19, 2B = 18)
    dep_uid: np.ndarray[Any, Any]  # distinct per département, for uniqueness (2A = 96, 2B = 97)
    commune: np.ndarray[Any, Any]
    commune_code: pa.Array
    name: pa.Array
    postcode: pa.Array

    @classmethod
    def load(cls) -> Places:
        rows = [c for cs in communes_by_department().values() for c in cs if not c.dpt.startswith("97")]
        dep = [c.dpt[1:] for c in rows]
        return cls(
            dep=pa.array(dep),
            dep_num=np.array([{"2A": 19, "2B": 18}.get(d) or int(d) for d in dep], dtype=np.int64),
            dep_uid=np.array([{"2A": 96, "2B": 97}.get(d) or int(d) for d in dep], dtype=np.int64),
            commune=np.array([int(c.code) for c in rows], dtype=np.int64),
            commune_code=pa.array([c.code for c in rows]),
            name=pa.array([c.name for c in rows]),
            postcode=pa.array([postal_code(c.dpt, c.code) for c in rows]),
        )


def _pad(values: np.ndarray[Any, Any], width: int) -> pa.Array:
    return pc.utf8_lpad(pc.cast(pa.array(values), pa.string()), width=width, padding="0")


def _in_sorted(values: np.ndarray[Any, Any], sorted_set: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """``np.isin(values, sorted_set)`` for a sorted set, by binary search."""
    if not len(sorted_set):
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[at] == values  # type: ignore[no-any-return]


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


class Population:
    """Chunk ``k`` of the population is a pure function of (seed, k) and of the NIRs issued before it, so a run
    regenerates exactly the people the cached vault holds."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.places = Places.load()
        self.male = pa.array(PersonProvider.first_names_male)
        self.female = pa.array(PersonProvider.first_names_female)
        self.last = pa.array([n.upper() for n in PersonProvider.last_names])
        w = 1.0 / np.arange(1, len(self.last) + 1) ** 0.6  # Faker's list is ordered by frequency
        self.last_w = w / w.sum()
        self.male_ascii = pa.array([_ascii(n) for n in PersonProvider.first_names_male])
        self.female_ascii = pa.array([_ascii(n) for n in PersonProvider.first_names_female])
        self.last_ascii = pa.array([_ascii(n) for n in PersonProvider.last_names])
        fake = Faker("fr_FR")
        fake.seed_instance(seed)
        self.streets = pa.array([fake.street_name() for _ in range(600)])
        self.used = np.zeros(0, dtype=np.int64)

    def chunk(self, k: int, n: int) -> dict[str, pa.Array]:
        """``n`` people as Arrow string columns named like the vault's ``Identity`` fields."""
        rng = np.random.default_rng([self.seed, k])
        p = self.places
        sex = rng.integers(1, 3, size=n)
        year = rng.integers(1920, 2025, size=n)
        month = rng.integers(1, 13, size=n)
        start = ((year - 1970) * 12 + month - 1).astype("datetime64[M]")
        days = ((start + 1).astype("datetime64[D]") - start.astype("datetime64[D]")).astype(np.int64)
        born = start.astype("datetime64[D]") + (rng.random(n) * days).astype(np.int64)
        birth_place = rng.integers(0, len(p.commune), size=n)
        order = rng.integers(1, 1000, size=n)
        # Unique NIRs: redraw the order number of any NIR issued before or twice in this chunk.
        base = (sex * 100 + year % 100) * 100 + month
        while True:
            uid = (base * 100 + p.dep_uid[birth_place]) * 1000 + p.commune[birth_place]
            uid = uid * 1000 + order
            _, first = np.unique(uid, return_index=True)
            clash = np.ones(n, dtype=bool)
            clash[first] = False
            clash |= _in_sorted(uid, self.used)
            if not clash.any():
                break
            order[clash] = rng.integers(1, 1000, size=int(clash.sum()))
        # uid is now unique and disjoint from used: a sorted concatenation is their union (np.union1d hashes
        # the whole vault again at every chunk, minutes at 10 million).
        self.used = np.sort(np.concatenate([self.used, uid]))
        first13 = ((base * 100 + p.dep_num[birth_place]) * 1000 + p.commune[birth_place]) * 1000 + order
        key = 97 - first13 % 97
        nir = _join(
            pc.cast(pa.array(sex), pa.string()),
            _pad(year % 100, 2),
            _pad(month, 2),
            p.dep.take(pa.array(birth_place)),
            p.commune_code.take(pa.array(birth_place)),
            _pad(order, 3),
            _pad(key, 2),
        )
        male = sex == 1
        first_i = np.where(male, rng.integers(0, len(self.male), size=n), rng.integers(0, len(self.female), size=n))
        first = pc.if_else(pa.array(male), self.male.take(pa.array(first_i % len(self.male))),
                           self.female.take(pa.array(first_i % len(self.female))))  # fmt: skip
        first_ascii = pc.if_else(pa.array(male), self.male_ascii.take(pa.array(first_i % len(self.male))),
                                 self.female_ascii.take(pa.array(first_i % len(self.female))))  # fmt: skip
        last_i = pa.array(rng.choice(len(self.last), size=n, p=self.last_w))
        home = pa.array(rng.integers(0, len(p.commune), size=n))
        phone = _join(pa.array(np.where(rng.random(n) < 0.72, "06 ", "01 ")), _pad(rng.integers(0, 100, n), 2), " ",
                      _pad(rng.integers(0, 100, n), 2), " ", _pad(rng.integers(0, 100, n), 2), " ",
                      _pad(rng.integers(0, 100, n), 2))  # fmt: skip
        serial = pc.cast(pa.array(np.arange(n, dtype=np.int64) + k * CHUNK), pa.string())
        return {
            "nir": nir,
            "rng_gem": pa.array(np.full(n, "1")),
            "last_name": self.last.take(last_i),
            "first_name": first,
            "birth_date": pc.strftime(pa.array(born), format="%Y-%m-%d"),
            "address": _join(
                pc.cast(pa.array(rng.integers(1, 120, n)), pa.string()),
                ", ",
                self.streets.take(pa.array(rng.integers(0, len(self.streets), n))),
            ),
            "postcode": p.postcode.take(home),
            "commune": p.name.take(home),
            "phone": phone,
            "email": _join(first_ascii, ".", self.last_ascii.take(last_i), serial, "@exemple.fr"),
        }

    def chunks(self, total: int) -> Iterator[tuple[int, dict[str, pa.Array]]]:
        for k, start in enumerate(range(0, total, CHUNK)):
            yield start, self.chunk(k, min(CHUNK, total - start))


def as_leak_people(columns: dict[str, pa.Array], rows: np.ndarray[Any, Any]) -> list[dict[str, str]]:
    """Selected people in the synthetic delivery's column names, which the leak generator takes."""
    names = {"nir": "BEN_NIR", "last_name": "NOM", "first_name": "PRENOM", "birth_date": "DATE_NAISSANCE",
             "postcode": "CODE_POSTAL", "commune": "COMMUNE", "phone": "TELEPHONE", "email": "EMAIL"}  # fmt: skip
    taken = {out: columns[name].take(pa.array(rows)).to_pylist() for name, out in names.items()}
    return [dict(zip(taken, values, strict=True)) for values in zip(*taken.values(), strict=True)]


# -- the vault ---------------------------------------------------------------------------------------------------


def settings_for(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, key_passphrase=PASSPHRASE)  # type: ignore[arg-type]


def build(data_dir: Path, people: int, seed: int, resume_from: int = 0) -> dict[str, float]:
    """Seal and store ``people`` identities the way ingestion does, and index them for blocking in the same pass.

    The blocking keys come from the clear columns being sealed (``blocking.index_people``: per distinct value
    folding, one custody MAC call per chunk, driver-level insert), with the ``block`` index dropped during the
    load and rebuilt once at the end; decrypting the vault again to index it would double the work.
    """
    if resume_from:
        hub = Hub.open(settings_for(data_dir))  # a smaller cached vault, grown to ``people``
    else:
        shutil.rmtree(data_dir, ignore_errors=True)
        hub = Hub.init(settings_for(data_dir))
    population = Population(seed)
    timings = {"generate": 0.0, "seal": 0.0, "store": 0.0, "blocking keys": 0.0, "blocking index": 0.0}
    cpu = time.process_time()
    with hub.session() as session:
        blocking.drop_index(session)
        if resume_from:  # the people added now get no blocking keys: mark the index for a rebuild (reindex)
            session.execute(update(BreachBlockState).values(scheme=0))
        session.commit()
    clock = time.perf_counter()
    for start, columns in population.chunks(people):
        timings["generate"] += time.perf_counter() - clock
        if start < resume_from:
            clock = time.perf_counter()
            continue  # already stored; generated again only so that later chunks draw the same NIRs
        with hub.session() as session:
            # SQLite's default page cache (2 MB) makes every B-tree insertion of a large vault a disk read.
            if session.connection().dialect.name == "sqlite":
                session.connection().exec_driver_sql("PRAGMA cache_size=-1000000")
            # A fresh pseudonymiser per chunk: its per-run cache would otherwise hold every NIR of the vault.
            pseudonymiser = Pseudonymiser(hub.custody)
            vault = IdentityVault(session, hub.custody, pseudonymiser)
            clock = time.perf_counter()
            columns["pseudonym"] = pa.array(pseudonymiser.pseudonyms(columns["nir"].to_pylist()), pa.string())
            rows = vault.seal(columns, f"bench-{start}")
            indexes = pseudonymiser.indexes(columns["nir"].to_pylist())  # cached by seal: no new MAC
            timings["seal"] += time.perf_counter() - clock
            clock = time.perf_counter()
            vault.store(rows)
            timings["store"] += time.perf_counter() - clock
            clock = time.perf_counter()
            if not resume_from:  # a grown vault is indexed afresh by reindex(), under the current scheme
                blocking.index_people(session, hub.custody, columns, indexes)
                blocking.advance(session, blocking.last_identity_id(session))
            session.commit()
            timings["blocking keys"] += time.perf_counter() - clock
        # What is committed, so that a build stopped half-way resumes from there.
        (data_dir / "bench.json").write_text(json.dumps({"people": start + len(rows), "seed": seed, "build": timings}))
        print(f"  vault: {start + len(rows):,} people ({sum(timings.values()):.0f} s wall, "
              f"{time.process_time() - cpu:.0f} s CPU)", flush=True)  # fmt: skip
        clock = time.perf_counter()
    clock = time.perf_counter()
    with hub.session() as session:
        if session.connection().dialect.name == "sqlite":
            session.connection().exec_driver_sql("PRAGMA cache_size=-1000000")
        blocking.create_index(session)
        session.commit()
    timings["blocking index"] = time.perf_counter() - clock
    timings["cpu"] = time.process_time() - cpu
    print(f"  blocking index rebuilt ({timings['blocking index']:.0f} s)", flush=True)
    hub.close()
    (data_dir / "bench.json").write_text(json.dumps({"people": people, "seed": seed, "build": timings}))
    return timings


def scheme_of(data_dir: Path) -> int:
    hub = Hub.open(settings_for(data_dir))
    try:
        with hub.session() as session:
            state = session.scalars(select(BreachBlockState)).first()
            return state.scheme if state else 0
    finally:
        hub.close()


def reindex(data_dir: Path, people: int, seed: int) -> float:
    """Rebuild the blocking index under the current scheme from the regenerated clear columns: what
    ``blocking.refresh`` does after a scheme change, without decrypting the vault again."""
    hub = Hub.open(settings_for(data_dir))
    population = Population(seed)
    started = time.perf_counter()
    with hub.session() as session:
        if session.connection().dialect.name == "sqlite":
            session.connection().exec_driver_sql("PRAGMA cache_size=-1000000")
        blocking.advance(session, 0)  # a scheme change empties the index here
        blocking.drop_index(session)
        for start, columns in population.chunks(people):
            indexes = Pseudonymiser(hub.custody).indexes(columns["nir"].to_pylist())
            blocking.index_people(session, hub.custody, columns, indexes)
            print(f"  blocking keys: {start + len(indexes):,} people ({time.perf_counter() - started:.0f} s)",
                  flush=True)  # fmt: skip
        blocking.create_index(session)
        blocking.advance(session, blocking.last_identity_id(session))
        session.commit()
    hub.close()
    return time.perf_counter() - started


# -- the run -----------------------------------------------------------------------------------------------------


def baseline(clear: pa.Table, leak_rows: list[list[str]]) -> tuple[float, list[str | None]]:
    """A plain exact join in DuckDB: NIR, else upper-cased last and first names and an ISO birth date."""
    con = duckdb.connect()
    con.execute("SET threads = 2")
    leak = pa.table({"row": pa.array(range(len(leak_rows))), "nir": [r[0] for r in leak_rows],
                     "last": [r[1] for r in leak_rows], "first": [r[2] for r in leak_rows],
                     "born": [r[3] for r in leak_rows]})  # fmt: skip
    con.register("people", clear)
    con.register("leak", leak)
    started = time.perf_counter()
    found = con.execute(
        """
        SELECT leak.row, coalesce(a.nir, b.nir)
        FROM leak
        LEFT JOIN people a ON a.nir = leak.nir
        LEFT JOIN people b ON leak.nir = '' AND upper(b.last_name) = upper(leak.last)
             AND upper(b.first_name) = upper(leak.first) AND b.birth_date = leak.born
        """
    ).fetchall()
    elapsed = time.perf_counter() - started
    con.close()
    out: list[str | None] = [None] * len(leak_rows)
    for row, nir in found:
        out[row] = nir
    return elapsed, out


def quality(truth: list[str | None], found: list[str | None]) -> tuple[float, float]:
    """Precision and recall of automatic matches against the leak's known truth."""
    matched = [(t, f) for t, f in zip(truth, found, strict=True) if f is not None]
    correct = sum(1 for t, f in matched if t == f)
    expected = sum(1 for t in truth if t not in (None, "conflict"))
    return (correct / len(matched) if matched else 0.0), correct / expected


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=10_000_000)
    parser.add_argument("--leak", type=int, default=LEAK_SIZE)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--work", type=Path, default=Path("/tmp/hygie-breach-bench"))
    args = parser.parse_args()
    data_dir = args.work / f"hub-{args.people}"
    built = data_dir / "bench.json"
    record = json.loads(built.read_text()) if built.exists() else None
    if record is None or record["seed"] != args.seed:
        record = None
        # A smaller vault of the same seed is grown rather than built again (its people are the first ones).
        smaller = sorted(
            (int(d.name.removeprefix("hub-")), d)
            for d in args.work.glob("hub-*")
            # whole chunks only: a chunk's people depend on its size
            if (d / "bench.json").exists() and int(d.name.removeprefix("hub-")) < args.people
            and int(d.name.removeprefix("hub-")) % CHUNK == 0
            and json.loads((d / "bench.json").read_text())["seed"] == args.seed
        )  # fmt: skip
        if smaller:
            shutil.rmtree(data_dir, ignore_errors=True)
            smaller[-1][1].rename(data_dir)
            record = json.loads(built.read_text())
    stored = record["people"] if record else 0  # people committed so far (a build stopped half-way resumes)
    if stored < args.people:
        print(f"building a vault of {args.people:,} people in {data_dir} from {stored:,} (kept for later runs)",
              flush=True)  # fmt: skip
        build_times = build(data_dir, args.people, args.seed, stored)
        if stored:
            build_times["grown from"] = stored
        built.write_text(json.dumps({"people": args.people, "seed": args.seed, "build": build_times}))
    else:
        build_times = record["build"] if record else {}
    if scheme_of(data_dir) != blocking.SCHEME:
        print(f"rebuilding the blocking index under scheme {blocking.SCHEME}", flush=True)
        build_times[f"reindex (scheme {blocking.SCHEME})"] = reindex(data_dir, args.people, args.seed)
        built.write_text(json.dumps({"people": args.people, "seed": args.seed, "build": build_times}))

    # The same people again, in memory: the leak's rows and the baseline's clear columns.
    clock = time.perf_counter()
    outsiders_n = args.leak // 25
    duplicates, conflicts = args.leak // 500, args.leak // 2500
    size = args.leak - outsiders_n - duplicates - conflicts - 1
    rng = np.random.default_rng(args.seed + 1)
    chosen = np.sort(rng.choice(args.people, size=size, replace=False))
    population = Population(args.seed)
    leak_people: list[dict[str, str]] = []
    clear_parts = []
    for start, columns in population.chunks(args.people):
        mine = chosen[(chosen >= start) & (chosen < start + len(columns["nir"]))] - start
        leak_people += as_leak_people(columns, mine)
        clear_parts.append(pa.table({k: columns[k] for k in ("nir", "last_name", "first_name", "birth_date")}))
    extra = population.chunk(10**6, outsiders_n)  # NIRs distinct from every vault person's
    outsiders = as_leak_people(extra, np.arange(outsiders_n))
    clear = pa.concat_tables(clear_parts)
    del clear_parts
    leak = make_leak(leak_people, outsiders, seed=args.seed, size=size, duplicates=duplicates, conflicts=conflicts)
    blob = leak.csv()
    del leak_people
    print(f"regenerated {args.people:,} people and a leak of {len(leak.rows):,} rows ({len(blob) / 1e6:.0f} MB) "
          f"in {time.perf_counter() - clock:.0f} s", flush=True)  # fmt: skip

    base_s, base_found = baseline(clear, leak.rows)
    del clear
    base_p, base_r = quality(leak.truth, base_found)

    hub = Hub.open(settings_for(data_dir))
    with hub.session() as session:
        incidents = Incidents(hub, session)
        load_before = os.getloadavg()
        cpu_before = _cpu_seconds()
        started = time.perf_counter()
        result = incidents.import_file("benchmark", "bench", "extraction patients.csv", blob)
        elapsed = time.perf_counter() - started
        cpu = _cpu_seconds() - cpu_before  # this process and its matching workers (reaped when their pool closed)
        load_after = os.getloadavg()
        stored = hub.settings.data_dir / "breach" / result.incident.file_name
        session.rollback()  # keep the cached hub as built
    stored.unlink(missing_ok=True)
    by_index = {hub.pseudonymiser.index(t): t for t in leak.truth if t not in (None, "conflict")}
    found = [by_index.get(o.person_index or b"", "?") if o.status is Status.MATCHED else None for o in result.outcomes]
    precision, recall = quality(leak.truth, found)
    counts = {s.value: sum(1 for o in result.outcomes if o.status is s) for s in Status}
    no_notice = all(o.status is not Status.MATCHED for o, t in zip(result.outcomes, leak.truth, strict=True)
                    if t == "conflict")  # fmt: skip
    hub.close()

    print(f"\nmachine: {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}")
    print(f"vault: {args.people:,} people; build " + ", ".join(f"{k} {v:.0f} s" for k, v in build_times.items()))
    print(f"leak: {len(leak.rows):,} rows ({size:,} vault people, {outsiders_n:,} outsiders, {duplicates:,} duplicates,"
          f" {conflicts:,} conflicts, 1 without identifier)")  # fmt: skip
    print(f"plain DuckDB exact join: {base_s:6.2f} s   precision {base_p:.4f} recall {base_r:.4f}")
    print(f"hygie breach import:     {elapsed:6.2f} s   precision {precision:.4f} recall {recall:.4f}   "
          f"({len(leak.rows) / elapsed:,.0f} rows/s)")  # fmt: skip
    print(f"import CPU (this process and its workers): {cpu:.1f} s = {cpu / len(leak.rows) * 1e6:.0f} µs a row; "
          f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")  # fmt: skip
    print(f"ratio secure / plain: {elapsed / base_s:.0f}x; target under 60 s: {'met' if elapsed < 60 else 'MISSED'}")
    print("counts: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()) + f"; conflicts never matched: {no_notice}")
    print("time split: " + ", ".join(f"{k} {v:.1f} s" for k, v in incidents.timings.items()))
    assert all(is_valid_nir(t) for t in list(by_index.values())[:1000])


if __name__ == "__main__":
    main()
