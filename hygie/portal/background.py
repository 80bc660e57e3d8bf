# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The hub's background tasks: signed checkpoints of the audit log (and witnesses), the DPO's access alerts, the end
of projects past their term, the citizen index's merges. `hygie serve` runs them beside the portal unless
``serve_background_tasks`` is off; `hygie background` runs them alone, so that a hub served by several processes
runs them once (deploy/systemd/hygie-background.service, docs/operations.md)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from hygie.audit.alerts import AlertPolicy, start_alerting
from hygie.audit.checkpointer import start_checkpointer
from hygie.audit.log import TransparencyLog
from hygie.governance.accounts import SYSTEM
from hygie.governance.acts import act
from hygie.governance.citizen_index import merge_recorded
from hygie.governance.projects import Projects
from hygie.hub import Hub

log = structlog.get_logger("hygie.background")


def start_background(hub: Hub) -> Callable[[], None]:
    """Start the tasks; returns the function that stops them (a last checkpoint is issued on the way out)."""
    checkpointer = start_checkpointer(
        TransparencyLog.for_hub(hub), interval=hub.settings.audit_checkpoint_seconds, settings=hub.settings
    )
    alerter = start_alerting(hub, interval=hub.settings.alert_seconds, policy=AlertPolicy.from_settings(hub.settings))
    stop = threading.Event()
    sweeper = threading.Thread(target=_sweep_projects, args=(hub, stop), name="hygie-project-sweep", daemon=True)
    sweeper.start()
    merger = threading.Thread(target=_merge_citizen_index, args=(hub, stop), name="hygie-index-merge", daemon=True)
    merger.start()

    def stop_all() -> None:
        stop.set()
        sweeper.join(timeout=30)
        merger.join(timeout=30)
        alerter.stop()
        checkpointer.stop()

    return stop_all


def _sweep_projects(hub: Hub, stop: threading.Event) -> None:
    while not stop.wait(hub.settings.project_sweep_seconds):
        try:
            with act(hub, SYSTEM, "project.sweep") as session:
                Projects(hub, session).expire_due(SYSTEM)
        except Exception:
            log.exception("project sweep failed")


def _merge_citizen_index(hub: Hub, stop: threading.Event) -> None:
    while not stop.wait(hub.settings.citizen_index_merge_seconds):
        try:
            merge_recorded(hub, SYSTEM, due_only=True)
        except Exception:
            log.exception("citizen index merge failed")
