# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Prometheus metrics of the portal: requests by class of route and status, latency, queue depth, requests in
flight, load shed, breaker states. Counts and timings only: no path parameters, no identifiers.

Each app has its own registry (tests build many apps in one process; a global registry would mix them).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from hygie.portal.resilience.admission import Admission
from hygie.portal.resilience.breaker import STATE_VALUE, Breaker
from hygie.portal.resilience.classes import Dependency, RouteClass
from hygie.portal.resilience.drain import Drain

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self, admission: Admission, breakers: dict[Dependency, Breaker], drain: Drain) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "hygie_http_requests", "Requests answered, by class of route and status.", ["route_class", "status"],
            registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "hygie_http_request_seconds", "Time from arrival to answer (queueing included), by class of route.",
            ["route_class"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.shed = Counter(
            "hygie_load_shed", "Requests refused at the door (503), by class of route and reason.",
            ["route_class", "reason"], registry=r,
        )  # fmt: skip
        self.failed = Counter(
            "hygie_dependency_failures", "Requests failed by a dependency (answered 503).", ["dependency"], registry=r
        )
        self.timeouts = Counter(
            "hygie_request_deadline_missed", "Admitted requests answered 503 past their deadline.", ["route_class"],
            registry=r,
        )  # fmt: skip
        queue = Gauge("hygie_admission_queue_depth", "Requests waiting for a slot.", ["route_class"], registry=r)
        active = Gauge("hygie_http_in_flight", "Requests holding a slot (being handled).", ["route_class"], registry=r)
        for route_class in RouteClass:
            gate = admission.gates[route_class]
            queue.labels(route_class.value).set_function(lambda g=gate: g.queued)  # type: ignore[misc]
            active.labels(route_class.value).set_function(lambda g=gate: g.active)  # type: ignore[misc]
        state = Gauge("hygie_breaker_state", "0 closed, 1 half-open, 2 open.", ["dependency"], registry=r)
        opened = Gauge("hygie_breaker_opened", "Times the breaker opened since start.", ["dependency"], registry=r)
        for dependency, breaker in breakers.items():
            state.labels(dependency.value).set_function(lambda b=breaker: STATE_VALUE[b.state])  # type: ignore[misc]
            opened.labels(dependency.value).set_function(lambda b=breaker: b.opened)  # type: ignore[misc]
        Gauge("hygie_draining", "1 while the server is stopping.", registry=r).set_function(lambda: int(drain.draining))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
