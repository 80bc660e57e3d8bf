# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Rules that find leads in a control project's view, each lead with its evidence.

Every rule is DuckDB SQL over the connection :func:`hygie.governance.views.open_view` gives (the project's
pseudonymised view, nothing else), and returns :class:`Finding` rows: the rule, the subject (a beneficiary's
project pseudonym, or a provider's number, which :mod:`hygie.control.leads` turns into a project pseudonym before
anything is stored or shown), the claims involved by their project claim keys, and the numbers that fired it.
Every threshold is a setting (``control_*`` in :mod:`hygie.config`).

Families (one per kind of :mod:`hygie.synth.anomalies`, which measures them):

- ``after_death``: care or dispensing dated after the beneficiary's death. A view that sees death dates cut to
  their month (no ``death_date`` identifier) fires only from the first day of the month after;
- ``volume``: more acts billed by one provider on one day than one person can do (cap by specialty);
- ``duplicate``: the same consultation or visit (patient, provider, day, nature, amount) billed on two claims;
- ``outlier``: a provider's amount per act, acts per patient or patients per day far from peers of the same
  specialty and region (robust z-score on the median and the median absolute deviation; national peers when the
  region has too few); ``outlier_multivariate``, of the same family: several of those moderately above peers at
  once, isolated by an Isolation Forest, and not already the univariate rule's lead;
- ``paper``: beneficiaries who share a contact with others (phone or address, compared through keyed HMACs of
  the vault, :func:`contact_rings`) and whose care has no other trace (one provider, no dispensing, no biology).
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb

from hygie.config import Settings
from hygie.governance.policy import CLAIM_KEY, departements_by_region
from hygie.i18n import N_, Message
from hygie.ingest.contract import BENEFICIARY_TABLE, CARE_TABLE, PSEUDONYM_COLUMN

FAMILIES = ("after_death", "volume", "duplicate", "outlier", "paper")
FAMILY = {"outlier_multivariate": "outlier"}
"""The family of a rule whose name is not a family's (both outlier rules are measured against injected outliers of
either kind: amounts × 6, and combined)."""
BENEFICIARY, PROVIDER = "beneficiary", "provider"
MAX_CLAIMS_KEPT = 200
"""Claim keys kept in one lead's evidence (the count says how many there were)."""
PHARMACY_OR_BIOLOGY = 3000
"""PRS_NAT_REF from this code on: dispensing, biology, auxiliaries (traces other than the consultation)."""
MAD_SCALE = 1.4826
"""Makes the median absolute deviation estimate a standard deviation under normality."""
OUTLIER_METRICS = ("amount_per_act", "acts_per_patient", "patients_per_day")


class RuleError(ValueError):
    """A rule cannot run on this view: the message says what it needs."""


@dataclass(frozen=True)
class Finding:
    rule: str
    subject_kind: str
    subject: str
    """A beneficiary's project pseudonym, or a provider's number (in memory only: pseudonymised before storage)."""
    claims: list[int]
    claims_total: int
    numbers: dict[str, Any]
    provider: str | None = None
    """The provider involved, when the subject is a beneficiary (a number here too, pseudonymised likewise)."""
    score: float = 0.0


@dataclass
class Context:
    con: duckdb.DuckDBPyConnection
    settings: Settings
    death_exact: bool
    rings: dict[str, tuple[str, int]] = field(default_factory=dict)
    """Project pseudonym -> (contact kind, people sharing it), from :func:`contact_rings`."""


def columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    try:
        return {str(r[0]) for r in con.sql(f"DESCRIBE {table}").fetchall()}
    except duckdb.CatalogException:
        return set()


def _need(ctx: Context, rule: str, table: str, *wanted: str) -> None:
    have = columns(ctx.con, table)
    missing = [c for c in wanted if c not in have]
    if missing:
        raise RuleError(
            N_(
                "rule {rule} needs {table} with {columns} in the project's view",
                rule=rule,
                table=table,
                columns=", ".join(missing),
            )
        )


def _positive() -> str:
    # Cancelling lines (BSE_REM_SGN = 2) are not care given; a view without the sign counts every line.
    return "coalesce(BSE_REM_SGN, 1) <> 2"


def _claims(values: Sequence[Any] | None) -> list[int]:
    return [int(v) for v in (values or [])][:MAX_CLAIMS_KEPT]


def after_death(ctx: Context) -> list[Finding]:
    _need(ctx, "after_death", CARE_TABLE, CLAIM_KEY, PSEUDONYM_COLUMN, "EXE_SOI_DTD")
    _need(ctx, "after_death", BENEFICIARY_TABLE, PSEUDONYM_COLUMN, "BEN_DCD_DTE")
    # A death date cut to its month could be any day of it: only care from the next month is surely after.
    after = "d.death" if ctx.death_exact else "CAST(d.death + INTERVAL 1 MONTH AS DATE) - 1"
    rows = ctx.con.sql(f"""
        WITH d AS (SELECT {PSEUDONYM_COLUMN} AS who, max(BEN_DCD_DTE) AS death FROM {BENEFICIARY_TABLE}
                   WHERE BEN_DCD_DTE IS NOT NULL GROUP BY 1)
        SELECT d.who, d.death, count(*) AS lines, min(p.EXE_SOI_DTD) AS first, max(p.EXE_SOI_DTD) AS last,
               list(p.{CLAIM_KEY} ORDER BY p.EXE_SOI_DTD, p.{CLAIM_KEY}) AS claims
        FROM {CARE_TABLE} p JOIN d ON p.{PSEUDONYM_COLUMN} = d.who
        WHERE p.EXE_SOI_DTD > {after} AND {_positive()}
        GROUP BY d.who, d.death ORDER BY d.who
    """).fetchall()
    return [
        Finding(
            "after_death",
            BENEFICIARY,
            who,
            _claims(claims),
            int(lines),
            {
                "death": str(death),
                "death_precision": "day" if ctx.death_exact else "month",
                "lines_after": int(lines),
                "first_after": str(first),
                "last_after": str(last),
                "days_after": (last - death).days,
            },
            score=float((last - death).days),
        )
        for who, death, lines, first, last, claims in rows
    ]


def _cap_sql(caps: dict[str, int]) -> str:
    default = int(caps.get("default", 60))
    cases = " ".join(f"WHEN {int(k)} THEN {int(v)}" for k, v in caps.items() if k != "default" and k.isdigit())
    return f"(CASE PSE_SPE_COD {cases} ELSE {default} END)" if cases else str(default)


def volume(ctx: Context) -> list[Finding]:
    _need(ctx, "volume", CARE_TABLE, CLAIM_KEY, "PFS_EXE_NUM", "PSE_SPE_COD", "EXE_SOI_DTD", "PRS_ACT_QTE")
    cap = _cap_sql(ctx.settings.control_max_daily_acts)
    rows = ctx.con.sql(f"""
        SELECT PFS_EXE_NUM, PSE_SPE_COD, EXE_SOI_DTD, sum(coalesce(PRS_ACT_QTE, 1)) AS acts, any_value({cap}) AS cap,
               count(*) AS lines, list({CLAIM_KEY} ORDER BY {CLAIM_KEY}) AS claims
        FROM {CARE_TABLE} WHERE PFS_EXE_NUM IS NOT NULL AND {_positive()}
        GROUP BY PFS_EXE_NUM, PSE_SPE_COD, EXE_SOI_DTD HAVING sum(coalesce(PRS_ACT_QTE, 1)) > any_value({cap})
        ORDER BY PFS_EXE_NUM, EXE_SOI_DTD
    """).fetchall()
    return [
        Finding(
            "volume",
            PROVIDER,
            str(provider),
            _claims(claims),
            int(lines),
            {"day": str(day), "specialty": spe, "acts": float(acts), "cap": int(cap_)},
            score=float(acts) / max(int(cap_), 1),
        )
        for provider, spe, day, acts, cap_, lines, claims in rows
    ]


def duplicate(ctx: Context) -> list[Finding]:
    _need(ctx, "duplicate", CARE_TABLE, CLAIM_KEY, PSEUDONYM_COLUMN, "PFS_EXE_NUM", "EXE_SOI_DTD", "PRS_NAT_REF",
          "PRS_PAI_MNT")  # fmt: skip
    ranges = " OR ".join(
        f"PRS_NAT_REF BETWEEN {int(low)} AND {int(high)}" for low, high in ctx.settings.control_duplicate_natures
    )
    if not ranges:
        return []
    rows = ctx.con.sql(f"""
        SELECT {PSEUDONYM_COLUMN}, PFS_EXE_NUM, EXE_SOI_DTD, PRS_NAT_REF, PRS_PAI_MNT, count(*) AS n,
               list({CLAIM_KEY} ORDER BY {CLAIM_KEY}) AS claims
        FROM {CARE_TABLE} WHERE ({ranges}) AND {_positive()} AND PFS_EXE_NUM IS NOT NULL
        GROUP BY ALL HAVING count(*) > 1 ORDER BY 1, 3
    """).fetchall()
    return [
        Finding(
            "duplicate",
            BENEFICIARY,
            str(who),
            _claims(claims),
            int(n),
            {"day": str(day), "nature": int(nat), "amount": float(amount), "times_billed": int(n)},
            provider=str(provider),
            score=float(n),
        )
        for who, provider, day, nat, amount, n, claims in rows
    ]


def _region_values() -> str:
    pairs = [(dpt, region) for region, dpts in departements_by_region().items() for dpt in dpts]
    return ", ".join(f"('{d}', {int(r)})" for d, r in pairs if d.replace("A", "").replace("B", "").isalnum())


@dataclass(frozen=True)
class _Peer:
    """A provider compared with peers: robust z-score of each metric (value, median, MAD, z)."""

    provider: str
    specialty: Any
    region: Any
    peers: int
    lines: int
    claims: list[Any]
    metrics: dict[str, tuple[float, float, float, float]]


def _compared(ctx: Context, rule: str) -> list[_Peer]:
    """Providers with enough acts and enough peers, and their metrics' robust z-scores among those peers."""
    _need(ctx, rule, CARE_TABLE, CLAIM_KEY, PSEUDONYM_COLUMN, "PFS_EXE_NUM", "PSE_SPE_COD", "EXE_SOI_DTD",
          "PRS_ACT_QTE", "PRS_PAI_MNT")  # fmt: skip
    s = ctx.settings
    cap = _cap_sql(s.control_max_daily_acts)
    # The provider's département is the start of their number (two characters; the warehouse codes it on three).
    rows = ctx.con.execute(f"""
        WITH regions(dpt, region) AS (VALUES {_region_values()}),
        -- patients a day: the median over the days worked (one impossible day is the volume rule's business)
        -- days beyond the daily cap are the volume rule's leads: left out here, so they do not count twice
        over AS (SELECT PFS_EXE_NUM AS who, EXE_SOI_DTD AS day FROM {CARE_TABLE}
                 WHERE PFS_EXE_NUM IS NOT NULL AND {_positive()} GROUP BY 1, 2, PSE_SPE_COD
                 HAVING sum(coalesce(PRS_ACT_QTE, 1)) > any_value({cap})),
        care AS (SELECT * FROM {CARE_TABLE} p WHERE PFS_EXE_NUM IS NOT NULL AND {_positive()}
                 AND NOT EXISTS (SELECT 1 FROM over o WHERE o.who = p.PFS_EXE_NUM AND o.day = p.EXE_SOI_DTD)),
        days AS (SELECT who, median(n) AS daily FROM (
                     SELECT PFS_EXE_NUM AS who, EXE_SOI_DTD, count(DISTINCT {PSEUDONYM_COLUMN}) AS n
                     FROM care GROUP BY 1, 2) GROUP BY who),
        per AS (
            SELECT PFS_EXE_NUM AS provider, any_value(PSE_SPE_COD) AS spe, any_value(r.region) AS region,
                   sum(coalesce(PRS_ACT_QTE, 1)) AS acts, sum(PRS_PAI_MNT) AS amount,
                   count(DISTINCT {PSEUDONYM_COLUMN}) AS patients, count(DISTINCT EXE_SOI_DTD) AS days,
                   any_value(d.daily) AS daily,
                   list({CLAIM_KEY} ORDER BY PRS_PAI_MNT DESC, {CLAIM_KEY}) AS claims, count(*) AS lines
            FROM care p LEFT JOIN regions r ON r.dpt = lpad(substr(p.PFS_EXE_NUM, 1, 2), 3, '0')
                 LEFT JOIN days d ON d.who = p.PFS_EXE_NUM
            WHERE NOT list_contains(?::BIGINT[], PSE_SPE_COD)
            GROUP BY PFS_EXE_NUM
            HAVING sum(coalesce(PRS_ACT_QTE, 1)) >= {int(s.control_outlier_min_acts)}
        ),
        m AS (SELECT *, amount / acts AS amount_per_act, acts / patients AS acts_per_patient,
                     daily AS patients_per_day,
                     count(*) OVER (PARTITION BY spe, region) AS regional_peers FROM per),
        g AS (SELECT *, CASE WHEN regional_peers >= {int(s.control_outlier_min_peers)} THEN region END AS peer_region
              FROM m)
        SELECT provider, spe, peer_region, lines, claims,
               {", ".join(
                   f"{x}, median({x}) OVER w AS {x}_median, mad({x}) OVER w AS {x}_mad"
                   for x in OUTLIER_METRICS)},
               count(*) OVER w AS peers
        FROM g WINDOW w AS (PARTITION BY spe, peer_region) ORDER BY provider
    """, [list(s.control_outlier_skip_specialties)]).fetchall()  # fmt: skip
    out = []
    for r in rows:
        provider, spe, region, lines, claims = r[:5]
        values = r[5:-1]
        peers = int(r[-1])
        if peers < s.control_outlier_min_peers:
            continue
        metrics = {}
        for i, metric in enumerate(OUTLIER_METRICS):
            x, median, mad = (float(v) for v in values[3 * i : 3 * i + 3])
            spread = max(MAD_SCALE * mad, s.control_outlier_min_spread * abs(median))
            metrics[metric] = (x, median, mad, (x - median) / spread if spread > 0 else 0.0)
        out.append(_Peer(str(provider), spe, region, peers, int(lines), list(claims or []), metrics))
    return out


def _shown(value: tuple[float, float, float, float]) -> dict[str, float]:
    x, median, mad, z = value
    return {"value": round(x, 2), "median": round(median, 2), "mad": round(mad, 2), "robust_z": round(z, 1)}


def outlier(ctx: Context) -> list[Finding]:
    out = []
    for p in _compared(ctx, "outlier"):
        fired = {m: _shown(v) for m, v in p.metrics.items() if v[3] > ctx.settings.control_outlier_robust_z}
        if fired:
            numbers = {"specialty": p.specialty, "peers": p.peers, "peer_region": p.region, "metrics": fired}
            best = max(v["robust_z"] for v in fired.values())
            out.append(Finding("outlier", PROVIDER, p.provider, _claims(p.claims), p.lines, numbers, score=best))
    return out


def outlier_multivariate(ctx: Context) -> list[Finding]:
    """Providers unusual in combination: several metrics above peers, none far enough for the univariate rule.

    scikit-learn's Isolation Forest is fitted on the robust z-scores of the compared providers the univariate rule
    does not report (its leads are far out on one axis: left in, they would spend the trees' cuts); a provider
    fires when its anomaly score is above ``control_isolation_min_score`` **and** at least
    ``control_isolation_min_metrics`` metrics are ``control_isolation_min_z`` robust deviations above peers (a
    provider unusual on one axis only, or only by doing less, is no lead of this rule). A provider the univariate
    rule reports is never reported here: one lead per provider and family."""
    from sklearn.ensemble import IsolationForest  # type: ignore[import-untyped]  # imported here: costs a second

    s = ctx.settings
    compared = [p for p in _compared(ctx, "outlier_multivariate")
                if max(v[3] for v in p.metrics.values()) <= s.control_outlier_robust_z]  # fmt: skip
    if len(compared) < 2 * s.control_outlier_min_peers:
        return []
    features = [[p.metrics[m][3] for m in OUTLIER_METRICS] for p in compared]
    forest = IsolationForest(n_estimators=s.control_isolation_trees, random_state=s.control_isolation_seed)
    forest.fit(features)
    # score_samples is minus the anomaly score of the original paper (Liu et al. 2008): in (0, 1], 0.5 is ordinary.
    scores = [-float(v) for v in forest.score_samples(features)]
    out = []
    for p, score in zip(compared, scores, strict=True):
        above = {m: _shown(v) for m, v in p.metrics.items() if v[3] >= s.control_isolation_min_z}
        if score > s.control_isolation_min_score and len(above) >= s.control_isolation_min_metrics:
            numbers = {"specialty": p.specialty, "peers": p.peers, "peer_region": p.region,
                       "anomaly_score": round(score, 3), "metrics": above}  # fmt: skip
            out.append(Finding("outlier_multivariate", PROVIDER, p.provider, _claims(p.claims), p.lines, numbers,
                               score=score))  # fmt: skip
    return out


def paper(ctx: Context) -> list[Finding]:
    _need(ctx, "paper", CARE_TABLE, CLAIM_KEY, PSEUDONYM_COLUMN, "PFS_EXE_NUM", "PRS_NAT_REF")
    if not ctx.rings:
        return []
    who = sorted(ctx.rings)
    has_prescriber = "PFS_PRE_NUM" in columns(ctx.con, CARE_TABLE)
    prescribed = "count(PFS_PRE_NUM)" if has_prescriber else "0"
    rows = ctx.con.execute(f"""
        SELECT {PSEUDONYM_COLUMN}, min(PFS_EXE_NUM) AS provider, count(*) AS lines,
               list({CLAIM_KEY} ORDER BY {CLAIM_KEY}) AS claims
        FROM {CARE_TABLE} WHERE list_contains(?::VARCHAR[], {PSEUDONYM_COLUMN})
        GROUP BY 1
        HAVING count(DISTINCT PFS_EXE_NUM) = 1 AND count(*) FILTER (WHERE PRS_NAT_REF >= {PHARMACY_OR_BIOLOGY}) = 0
           AND {prescribed} = 0
        ORDER BY 1
    """, [who]).fetchall()  # fmt: skip
    out = []
    for person, provider, lines, claims in rows:
        kind, shared = ctx.rings[str(person)]
        numbers = {"shared_contact": kind, "people_sharing_it": shared, "providers": 1, "lines": int(lines),
                   "dispensing_or_biology": 0}  # fmt: skip
        out.append(Finding("paper", BENEFICIARY, str(person), _claims(claims), int(lines), numbers,
                           provider=str(provider), score=float(shared)))  # fmt: skip
    return out


RULES: dict[str, Callable[[Context], list[Finding]]] = {
    "after_death": after_death,
    "volume": volume,
    "duplicate": duplicate,
    "outlier": outlier,
    "outlier_multivariate": outlier_multivariate,
    "paper": paper,
}
RULE_LABELS: dict[str, Message] = {
    "after_death": N_("Care or dispensing after death"),
    "volume": N_("Impossible daily volume"),
    "duplicate": N_("Double billing"),
    "outlier": N_("Unusual for its specialty and region"),
    "outlier_multivariate": N_("Unusual in combination (isolation forest)"),
    "paper": N_("Patients who exist only on paper"),
}
"""Each rule's name as the pages show it (French from the catalogue)."""


OPT_IN: tuple[str, ...] = ()
"""Rules run only when named (none now: the multivariate outlier rule was, until it was measured at 0.9 precision
or more for its family on injected combined outliers; docs/control.md)."""
DEFAULT_RULES = tuple(r for r in RULES if r not in OPT_IN)


def check_rules(names: Sequence[str] | None) -> list[str]:
    """The rules asked for (the default ones when none), or a clear error naming the unknown one."""
    if not names:
        return list(DEFAULT_RULES)
    unknown = [n for n in names if n not in RULES]
    if unknown:
        raise RuleError(
            N_("unknown rule {rule}; the rules are: {rules}", rule=repr(unknown[0]), rules=", ".join(RULES))
        )
    return list(dict.fromkeys(names))


def normalise_contact(kind: str, value: str | None, postcode: str | None = None) -> str | None:
    """The form two contacts are compared in: digits of a phone, folded words of an address with its postcode."""
    if not value:
        return None
    if kind == "phone":
        digits = "".join(ch for ch in value if ch.isdigit())
        return digits[-9:] if len(digits) >= 9 else None
    folded = unicodedata.normalize("NFKD", f"{value} {postcode or ''}").casefold()
    words = "".join(ch if ch.isalnum() else " " for ch in folded if not unicodedata.combining(ch)).split()
    return " ".join(words) or None


def rings_of(keyed: dict[str, list[tuple[str, bytes]]], min_shared: int) -> dict[str, tuple[str, int]]:
    """Person -> (contact kind, people sharing it) for people sharing a keyed contact with ``min_shared - 1``
    others or more; ``keyed`` maps each person to their (kind, HMAC) pairs. The largest sharing wins."""
    holders: dict[tuple[str, bytes], set[str]] = defaultdict(set)
    for person, pairs in keyed.items():
        for pair in pairs:
            holders[pair].add(person)
    out: dict[str, tuple[str, int]] = {}
    for (kind, _mac), people in holders.items():
        if len(people) >= min_shared:
            for person in people:
                if person not in out or out[person][1] < len(people):
                    out[person] = (kind, len(people))
    return out
