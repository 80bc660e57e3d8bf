# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""One portal's resilience state: its admission gates, breakers, drain and metrics (kept on ``app.state``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hygie.config import Settings
from hygie.portal.resilience.admission import Admission
from hygie.portal.resilience.breaker import Breaker
from hygie.portal.resilience.classes import Dependency
from hygie.portal.resilience.drain import Drain
from hygie.portal.resilience.metrics import Metrics


@dataclass
class Resilience:
    admission: Admission
    breakers: dict[Dependency, Breaker]
    drain: Drain
    metrics: Metrics

    @classmethod
    def build(cls, settings: Settings, checks: dict[Dependency, Callable[[], None]]) -> Resilience:
        breakers = {
            dependency: Breaker(
                dependency,
                check,
                failures=settings.breaker_failures,
                open_seconds=settings.breaker_open_seconds,
                probe_seconds=settings.dependency_probe_seconds,
            )
            for dependency, check in checks.items()
        }
        admission = Admission(settings)
        drain = Drain(settings.drain_seconds)
        return cls(admission, breakers, drain, Metrics(admission, breakers, drain))
