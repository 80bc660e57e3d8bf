# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Breach notices by e-mail go to the address the person chose (step-up protected), else to the one held before the
breach, never to a newer record; a vault value that is not one address (a line break, a list) fails alone."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import select

from hygie.breach import mail as breach_mail
from hygie.breach.models import BreachFlag, BreachIncident, BreachNotice, BreachOutbox
from hygie.governance import letters
from hygie.hub import Hub
from hygie.warehouse.catalog import BatchRow
from tests.mailbox import serving
from tests.portal.world import people

THIEF = "thief@evil.example"


def new_record(hub: Hub, nir: str, batch: str, accepted_at: datetime, email: str) -> str:
    """A vault record of this person with another e-mail, in a batch accepted at ``accepted_at``; the old e-mail."""
    with hub.session() as session:
        vault = hub.vault(session)
        old = vault.find(nir)
        assert old is not None
        changed = dataclasses.replace(old, email=email)
        session.add(BatchRow(batch_id=batch, producer="test", content_digest=(batch * 64)[:64], created_at="now",
                             accepted_at=accepted_at, rows={}))  # fmt: skip
        vault.store(vault.seal({k: pa.array([v]) for k, v in dataclasses.asdict(changed).items()}, batch))
        session.commit()
        return old.email or ""


@pytest.mark.parametrize("populated", ["sqlite"], indirect=True)
def test_notices_go_to_the_chosen_or_pre_breach_address_and_a_bad_one_fails_alone(
    populated: Hub, delivery: Path
) -> None:
    hub = populated
    now = datetime.now(UTC)
    before, after = now - timedelta(minutes=1), now + timedelta(minutes=1)
    nirs = [p["BEN_NIR"] for p in people(delivery)[20:24]]
    # Before the leak's import, two people's records got values that are not one address (header injection, a list).
    new_record(hub, nirs[0], "crlf", before, f"victim@example.org\r\nBcc: {THIEF}")
    new_record(hub, nirs[1], "list", before, f"victim2@example.org, {THIEF}")
    # After it, a third person's newest record names the thief's address (what whoever held the leak would plant).
    pre_breach = new_record(hub, nirs[2], "planted", after, THIEF)
    assert "@" in pre_breach
    indexes = [hub.pseudonymiser.index(n) for n in nirs]
    with hub.session() as session:
        # The fourth chose their notice address through the (step-up protected) contact change.
        letters.store_contact(session, hub.custody, indexes[3], {"email": "chosen@example.org", "phone": None}, "post")
        incident = BreachIncident(name="leak", status="notified", created_at=now, created_by="test", file_format="csv",
                                  file_name="x", file_key=None, retain_until=now + timedelta(days=30), mapping=[],
                                  counts={}, categories={}, notified_at=now)  # fmt: skip
        session.add(incident)
        session.flush()
        for index in indexes:
            session.add(BreachFlag(person_index=index, incident_id=incident.id, until=now + timedelta(days=1)))
            notice = BreachNotice(incident_id=incident.id, person_index=index, categories=["e-mail address"],
                                  created_at=now)  # fmt: skip
            session.add(notice)
            session.flush()
            session.add(BreachOutbox(notice_id=notice.id, status="pending", attempts=0))
        session.commit()

    with serving() as box:
        hub.settings.breach_smtp_host, hub.settings.breach_smtp_port = "127.0.0.1", box.port
        with hub.session() as session:
            counts = breach_mail.send_pending(hub, session, "console")  # the bad values first: nothing escapes
            session.commit()
    recipients = sorted(r for to, _ in box.messages for r in to)
    assert recipients == sorted([pre_breach, "chosen@example.org"])  # one message each, nobody else
    assert not any(THIEF.encode() in raw for raw in box.contents)
    assert counts == {"sent": 2, "letter": 0, "failed": 2}
    with hub.session() as session:
        outcome = {o.notice_id: (o.status, o.last_error) for o in session.scalars(select(BreachOutbox))}
    statuses = [status for status, _ in sorted(outcome.values(), key=lambda s: s[0])]
    assert statuses == ["failed", "failed", "sent", "sent"]
    assert {e for s, e in outcome.values() if s == "failed"} == {breach_mail.BAD_ADDRESS}


def test_single_address_refuses_lists_line_breaks_and_display_names() -> None:
    good = "prenom.nom+tag@sous.example.org"
    assert breach_mail.single_address(good) == good
    for bad in (f"a@example.org\r\nBcc: {THIEF}", "a@example.org\nX: y", f"a@example.org, {THIEF}",
                f"a@example.org;{THIEF}", f"Victim <{THIEF}>", "a@b", "@example.org", "a@@example.org", "",
                "a" * 250 + "@example.org", "é@example.org"):  # fmt: skip
        assert breach_mail.single_address(bad) is None, bad
