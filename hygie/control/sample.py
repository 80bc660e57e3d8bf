# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A stratified random sample of paid claims, drawn from a control project's view, seeded and on the record.

The frame is every paid claim of the project's newest view (one row of ``ER_PRS_F`` per project claim key, with a
positive amount), read through the data gate (:func:`hygie.governance.access.require_view_access`, then
:func:`hygie.governance.views.open_view`): never the warehouse, never a file. Strata cross the care type (a family
of ``PRS_NAT_REF`` codes, :data:`CARE_TYPES`) with a band of the paid amount (``control_amount_bands``). The size
and its Neyman allocation come from the target precision (:func:`hygie.control.estimate.design`).

The draw is reproducible and checkable: the frame is ordered by claim key, each stratum is drawn in name order by
one numpy generator seeded with 128 random bits, and the seed, the design and a SHA-256 of the frame go into the
``control.sample.draw`` event, committed with the sample before it is returned. :func:`verify` draws again from
the recorded seed and says whether the same claims come out.

Claim keys are those of the view generation the sample was drawn from; a rebuilt view has other keys, so the
sample keeps its generation, and its claims' amounts and strata (no identifier of anyone).
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from hygie.audit import record
from hygie.config import Settings
from hygie.control.estimate import CONFIDENCE, EstimateError, StratumFrame, design
from hygie.db import Base
from hygie.governance.access import require_member, require_view_access, require_visible
from hygie.governance.accounts import Actor
from hygie.governance.acts import act
from hygie.governance.errors import Conflict, Denied, GovernanceError, Invalid, NotFound
from hygie.governance.models import Project
from hygie.governance.policy import CLAIM_KEY, Role
from hygie.governance.views import ViewError, newest_ready, open_view
from hygie.hub import Hub
from hygie.i18n import N_
from hygie.ingest.contract import CARE_TABLE

ALLOCATION = "neyman"
"""How the sample is spread over strata: Neyman allocation on the spread of the paid amounts (the view knows every
amount, so the allocation needs no pilot sample)."""

AMOUNT_COLUMNS = ("BSE_REM_MNT", "PRS_PAI_MNT")
"""The paid amount, by preference: what the insurer reimbursed, else the expense when the view lacks it."""

CARE_TYPES: tuple[tuple[str, int, int], ...] = (
    ("consultation", 1100, 1199),
    ("visite", 1200, 1299),
    ("acte-technique", 1300, 1499),
    ("auxiliaire", 3100, 3199),
    ("biologie", 3200, 3299),
    ("pharmacie", 3300, 3499),
)
"""Families of the nature-of-service code PRS_NAT_REF (IR_NAT_V) that stratify the sample; any other code is
'autre'."""
OTHER_CARE = "autre"


class ControlSample(Base):
    """One draw: where it came from, how it was sized, and the seed that reproduces it."""

    __tablename__ = "control_sample"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), nullable=False, index=True)
    view_generation: Mapped[int] = mapped_column(Integer, nullable=False)
    drawn_by: Mapped[int] = mapped_column(ForeignKey("account.id"), nullable=False)
    drawn_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    seed: Mapped[str] = mapped_column(String(40), nullable=False)
    """The generator's seed (decimal, up to 128 bits), also in the draw's audit event."""
    design: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    """Settings used: half-width, expected rate, minimum per stratum, allocation, bands, amount column."""
    strata: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    """{stratum: {"claims": N_h, "amount": X_h, "mean_square": ..., "drawn": n_h}}"""
    frame_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    """SHA-256 of the frame as drawn from (claim keys, amounts and strata in key order)."""


class SampledClaim(Base):
    """A claim of a sample, and its review once made."""

    __tablename__ = "control_sample_claim"
    __table_args__ = (UniqueConstraint("sample_id", "claim_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("control_sample.id"), nullable=False, index=True)
    claim_key: Mapped[int] = mapped_column(BigInteger, nullable=False)
    stratum: Mapped[str] = mapped_column(String(60), nullable=False)
    care_type: Mapped[str] = mapped_column(String(30), nullable=False)
    amount: Mapped[float] = mapped_column(Float, nullable=False)
    decision: Mapped[str | None] = mapped_column(String(10), nullable=True)
    """'proper' or 'improper' once reviewed."""
    reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    """A code of hygie.control.review.REASONS (improper claims only)."""
    error_amount: Mapped[float | None] = mapped_column(Float, nullable=True)
    reviewed_by: Mapped[int | None] = mapped_column(ForeignKey("account.id"), nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ClaimReviewer(Base):
    """A project member the project's requester designated as trained to review sampled claims."""

    __tablename__ = "control_reviewer"
    __table_args__ = (UniqueConstraint("project_id", "account_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), nullable=False, index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), nullable=False)
    training: Mapped[str] = mapped_column(String(300), nullable=False)
    """What training the reviewer had (free text checked for identifiers)."""
    designated_by: Mapped[int] = mapped_column(ForeignKey("account.id"), nullable=False)
    designated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class RateEstimate(Base):
    """An estimate computed from a sample's reviews: released, or withheld with the reason."""

    __tablename__ = "control_estimate"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("control_sample.id"), nullable=False, index=True)
    computed_by: Mapped[int] = mapped_column(ForeignKey("account.id"), nullable=False)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    reviewed: Mapped[int] = mapped_column(Integer, nullable=False)
    drawn: Mapped[int] = mapped_column(Integer, nullable=False)
    rate: Mapped[float] = mapped_column(Float, nullable=False)
    low: Mapped[float] = mapped_column(Float, nullable=False)
    high: Mapped[float] = mapped_column(Float, nullable=False)
    improper_amount: Mapped[float] = mapped_column(Float, nullable=False)
    amount_low: Mapped[float] = mapped_column(Float, nullable=False)
    amount_high: Mapped[float] = mapped_column(Float, nullable=False)
    total_amount: Mapped[float] = mapped_column(Float, nullable=False)
    claims: Mapped[int] = mapped_column(BigInteger, nullable=False)
    """Paid claims in the frame (N)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _said(exc: Exception) -> str:
    """An exception's message as it was raised (a catalogued message keeps its identifier), not ``str(exc)``."""
    if len(exc.args) == 1 and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)


def care_type(nat: int) -> str:
    for name, low, high in CARE_TYPES:
        if low <= nat <= high:
            return name
    return OTHER_CARE


def band_names(bands: list[float]) -> list[str]:
    """'0-20', '20-50', ..., '500+' for bounds [20, 50, ..., 500]."""
    edges = [0.0, *bands]
    names = [f"{_eur(a)}-{_eur(b)}" for a, b in itertools.pairwise(edges)]
    return [*names, f"{_eur(edges[-1])}+"]


def _eur(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class Frame:
    """The paid claims of a view, in claim-key order, each with its stratum as a small integer code into ``names``
    (national frames hold tens of millions of claims: no string per claim)."""

    keys: npt.NDArray[np.int64]
    amounts: npt.NDArray[np.float64]
    codes: npt.NDArray[np.int16]
    names: tuple[str, ...]
    """Stratum names, 'care type/band', indexed by code."""
    amount_column: str

    def stratum(self, i: int) -> str:
        return self.names[int(self.codes[i])]

    def digest(self) -> str:
        h = hashlib.sha256(b"hygie.control-frame/1\n")
        h.update("\n".join(self.names).encode("utf-8") + b"\n")
        h.update(self.keys.astype("<i8").tobytes())
        h.update(self.amounts.astype("<f8").tobytes())
        h.update(self.codes.astype("<i2").tobytes())
        return h.hexdigest()

    def members(self) -> dict[str, npt.NDArray[np.int64]]:
        """Stratum name -> indices of its claims, ascending (one stable sort of the codes)."""
        order = np.argsort(self.codes, kind="stable")
        bounds = np.cumsum(np.bincount(self.codes, minlength=len(self.names)))
        starts = np.concatenate([[0], bounds[:-1]])
        return {
            name: order[a:b].astype(np.int64)
            for name, a, b in zip(self.names, starts.tolist(), bounds.tolist(), strict=True)
            if b > a
        }

    def summary(self) -> list[StratumFrame]:
        size = len(self.names)
        counts = np.bincount(self.codes, minlength=size)
        sums = np.bincount(self.codes, weights=self.amounts, minlength=size)
        squares = np.bincount(self.codes, weights=self.amounts * self.amounts, minlength=size)
        out = [
            StratumFrame(name, int(counts[c]), float(sums[c]), float(squares[c] / counts[c]))
            for c, name in enumerate(self.names)
            if counts[c] > 0
        ]
        return sorted(out, key=lambda f: f.name)


def _check_bands(bands: list[float]) -> None:
    if not bands or any(b <= 0 for b in bands) or any(b >= c for b, c in itertools.pairwise(bands)):
        raise Invalid(N_("control_amount_bands must be positive and increasing (EUR)"))


def read_frame(hub: Hub, session: Session, project: Project) -> Frame:
    """The sampling frame, from the project's view (the one data gate): paid claims and their strata."""
    bands = list(hub.settings.control_amount_bands)
    _check_bands(bands)
    try:
        con = open_view(hub, session, project)
    except ViewError as exc:
        raise Conflict(_said(exc)) from None
    try:
        try:
            columns = {str(row[0]) for row in con.sql(f"DESCRIBE {CARE_TABLE}").fetchall()}
        except duckdb.CatalogException:
            columns = set()  # the view has no care table
        amount = next((c for c in AMOUNT_COLUMNS if c in columns), None)
        if CLAIM_KEY not in columns or "PRS_NAT_REF" not in columns or amount is None:
            raise Conflict(
                N_(
                    "project {project}'s view cannot be sampled: it needs {table} with {key}, PRS_NAT_REF and a paid "
                    "amount ({amounts}); change the project's scope",
                    project=project.id,
                    table=CARE_TABLE,
                    key=CLAIM_KEY,
                    amounts=" or ".join(AMOUNT_COLUMNS),
                )
            )
        rows = con.sql(
            f"SELECT {CLAIM_KEY} AS k, arg_max(TRY_CAST(PRS_NAT_REF AS BIGINT), TRY_CAST({amount} AS DOUBLE)) AS nat, "
            f"sum(TRY_CAST({amount} AS DOUBLE)) AS x FROM {CARE_TABLE} GROUP BY {CLAIM_KEY} "
            f"HAVING sum(TRY_CAST({amount} AS DOUBLE)) > 0 ORDER BY {CLAIM_KEY}"
        ).fetchnumpy()
    finally:
        con.close()
    keys = np.asarray(rows["k"], dtype=np.int64)
    amounts = np.round(np.asarray(rows["x"], dtype=np.float64), 2).astype(np.float64)
    return frame_of(keys, amounts, np.asarray(rows["nat"], dtype=np.float64), bands, amount)


def frame_of(
    keys: npt.NDArray[np.int64],
    amounts: npt.NDArray[np.float64],
    nat: npt.NDArray[np.float64],
    bands: list[float],
    amount_column: str,
) -> Frame:
    """The frame of paid claims given in claim-key order: each claim's stratum from its care code and amount."""
    care_names = [name for name, _, _ in CARE_TYPES] + [OTHER_CARE]
    band_labels = band_names(bands)
    care = np.select(
        [(nat >= low) & (nat <= high) for _, low, high in CARE_TYPES], list(range(len(CARE_TYPES))), len(CARE_TYPES)
    )
    band = np.searchsorted(np.asarray(bands), amounts, side="left")
    codes = (care * len(band_labels) + band).astype(np.int16)
    names = tuple(f"{c}/{b}" for c in care_names for b in band_labels)
    return Frame(keys, amounts, codes, names, amount_column)


def draw_from(frame: Frame, sizes: dict[str, int], seed: int) -> npt.NDArray[np.int64]:
    """Indices into ``frame`` of the drawn claims: per stratum in name order, ``sizes[h]`` distinct claims chosen by
    one generator seeded with ``seed``. The same frame and seed give the same claims."""
    rng = np.random.default_rng(seed)
    members = frame.members()
    chosen = []
    for name in sorted(sizes):
        chosen.append(np.sort(rng.choice(members[name], size=sizes[name], replace=False)))
    return np.concatenate(chosen) if chosen else np.empty(0, dtype=np.int64)


def require_control_project(session: Session, settings: Settings, actor: Actor, project_id: int) -> Project:
    """The project, if ``actor`` passes its data gate and its purpose is one control runs under."""
    project = require_view_access(session, settings, actor, project_id)
    if project.purpose not in settings.control_purposes:
        raise Denied(
            N_(
                "project {project}'s purpose ({purpose}) is not one claims are controlled under ({purposes}); control "
                "runs inside a project approved for it",
                project=project_id,
                purpose=project.purpose,
                purposes=", ".join(settings.control_purposes),
            )
        )
    if project.release_mode == "dp":
        # Control reads single claims: a project that releases only noisy, budgeted outputs cannot do it.
        raise Denied(
            N_(
                "project {project} releases with differential privacy: claim control reads single claims, so it "
                "runs in a project that releases with disclosure control",
                project=project_id,
            )
        )
    return project


def draw(hub: Hub, actor: Actor, project_id: int, *, seed: int | None = None) -> ControlSample:
    """Draw and store a sample of the project's paid claims; the ``control.sample.draw`` event commits with it."""
    settings = hub.settings
    with act(hub, actor, "control.sample.draw", object=f"project:{project_id}", project_id=project_id) as session:
        project = require_control_project(session, settings, actor, project_id)
        view = newest_ready(session, project.id)
        if view is None:
            raise Conflict(N_("project {project} has no ready view", project=project_id))
        frame = read_frame(hub, session, project)
        summary = frame.summary()
        try:
            sizes = design(
                summary,
                half_width=settings.control_target_half_width,
                expected_rate=settings.control_expected_rate,
                min_per_stratum=settings.control_min_per_stratum,
            )
        except EstimateError as exc:
            raise Conflict(_said(exc)) from None
        if sum(sizes.values()) > settings.control_max_sample:
            raise Conflict(
                N_(
                    "this precision needs {count} claims, more than control_max_sample ({most}); ask for a wider "
                    "half-width",
                    count=sum(sizes.values()),
                    most=settings.control_max_sample,
                )
            )
        seed = secrets.randbits(128) if seed is None else seed
        picked = draw_from(frame, sizes, seed)
        assert actor.account_id is not None  # require_view_access admits signed-in researchers only
        sample = ControlSample(
            project_id=project.id,
            view_generation=view.generation,
            drawn_by=actor.account_id,
            drawn_at=_now(),
            seed=str(seed),
            design={
                "half_width": settings.control_target_half_width,
                "expected_rate": settings.control_expected_rate,
                "min_per_stratum": settings.control_min_per_stratum,
                "confidence": CONFIDENCE,
                "allocation": ALLOCATION,
                "amount_bands": list(settings.control_amount_bands),
                "amount_column": frame.amount_column,
            },
            strata={
                s.name: {"claims": s.claims, "amount": s.amount, "mean_square": s.mean_square, "drawn": sizes[s.name]}
                for s in summary
                if s.name in sizes
            },
            frame_sha256=frame.digest(),
        )
        session.add(sample)
        session.flush()
        session.add_all(
            SampledClaim(
                sample_id=sample.id,
                claim_key=int(frame.keys[i]),
                stratum=frame.stratum(i),
                care_type=frame.stratum(i).split("/", 1)[0],
                amount=float(frame.amounts[i]),
            )
            for i in picked.tolist()
        )
        record(
            session,
            actor=actor.ref,
            role=actor.role_name,
            action="control.sample.draw",
            object=f"control-sample:{sample.id}",
            project_id=project.id,
            purpose=project.purpose,
            detail={
                "seed": str(seed),
                "view_generation": view.generation,
                "frame_sha256": sample.frame_sha256,
                "frame_claims": int(frame.keys.size),
                "drawn": int(picked.size),
                "design": sample.design,
                "strata": {name: s["drawn"] for name, s in sample.strata.items()},
            },
        )
        session.flush()
        session.expunge(sample)
        return sample


def require_output_reader(session: Session, actor: Actor, project_id: int) -> Project:
    """The project, if ``actor`` may read its released numbers (estimates, lead counts): its researchers and the
    roles that oversee it; never the operator nor the console, who run the platform and receive no outputs."""
    project = require_visible(session, actor, project_id)
    if actor.role is None or actor.role == Role.OPERATOR:
        raise Denied(N_("operators run the platform and receive no project's outputs"))
    return project


def gated_sample(
    session: Session, settings: Settings, actor: Actor, sample_id: int, project_id: int | None = None
) -> tuple[ControlSample, Project]:
    """The sample and its project, if ``actor`` passes the project's data gate for control.

    Whoever is not a member of the sample's project hears exactly what they would of a missing sample ("no sample
    N"): the gate is never asked about a project the caller did not name, so no answer tells that a sample exists,
    nor which project drew it. With ``project_id`` (a page's address names both), that project's gate comes first,
    then the sample is looked up inside it only."""
    if project_id is not None:
        project = require_control_project(session, settings, actor, project_id)
        sample = session.get(ControlSample, sample_id)
        if sample is None or sample.project_id != project.id:
            raise NotFound(N_("no sample {sample}", sample=sample_id))
        return sample, project
    missing = NotFound(N_("no sample {sample}", sample=sample_id))
    sample = session.get(ControlSample, sample_id)
    if sample is None:
        raise missing
    try:
        require_member(session, actor, sample.project_id)
    except GovernanceError:
        raise missing from None
    return sample, require_control_project(session, settings, actor, sample.project_id)


@dataclass(frozen=True)
class Verification:
    same_frame: bool
    same_claims: bool


def verify(hub: Hub, actor: Actor, sample_id: int) -> Verification:
    """Draw again from the recorded seed over the same view generation: the same frame and the same claims?"""
    with act(hub, actor, "control.sample.verify", object=f"control-sample:{sample_id}") as session:
        sample, project = gated_sample(session, hub.settings, actor, sample_id)
        view = newest_ready(session, project.id)
        if view is None or view.generation != sample.view_generation:
            raise Conflict(
                N_(
                    "sample {sample} was drawn from view generation {generation}, which is no longer the project's "
                    "view: its draw can no longer be repeated",
                    sample=sample_id,
                    generation=sample.view_generation,
                )
            )
        frame = read_frame(hub, session, project)
        sizes = {name: int(s["drawn"]) for name, s in sample.strata.items()}
        same_frame = frame.digest() == sample.frame_sha256
        drawn = set(session.scalars(select(SampledClaim.claim_key).where(SampledClaim.sample_id == sample_id)))
        again = (
            {int(frame.keys[i]) for i in draw_from(frame, sizes, int(sample.seed)).tolist()} if same_frame else set()
        )
        result = Verification(same_frame, same_frame and again == drawn)
        record(
            session,
            actor=actor.ref,
            role=actor.role_name,
            action="control.sample.verify",
            object=f"control-sample:{sample_id}",
            project_id=project.id,
            purpose=project.purpose,
            detail={"same_frame": result.same_frame, "same_claims": result.same_claims},
        )
        return result
