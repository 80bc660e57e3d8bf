# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Letters by post: knowing a leaked NIR, name and birth date opens nothing; the code on a letter to the address held
before the breach does, once; flagged people step up (new device, contact change) instead of being locked out."""

from __future__ import annotations

import dataclasses
import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import func, select, text, update

from hygie.audit import AuditEvent
from hygie.breach.models import BreachFlag, BreachIncident, BreachNotice
from hygie.governance import letters
from hygie.governance.accounts import Accounts, Actor, Scope
from hygie.governance.citizens import Citizens, LetterLimited, network_of, typed_nir
from hygie.governance.errors import Denied
from hygie.governance.letters import CitizenLetter, Purpose, StepUpNeeded
from hygie.governance.limits import Limited
from hygie.governance.policy import Role
from hygie.hub import Hub
from hygie.warehouse.catalog import BatchRow
from tests.portal.world import PASSWORD, people

CODE = re.compile(r"\b[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}\b")
SOURCE = "203.0.113.7"


def letters_of(hub: Hub, person_index: bytes, purpose: Purpose) -> list[CitizenLetter]:
    with hub.session() as session:
        return list(
            session.scalars(
                select(CitizenLetter)
                .where(CitizenLetter.person_index == person_index, CitizenLetter.purpose == purpose.value)
                .order_by(CitizenLetter.id)
            )
        )


def code_in(hub: Hub, letter: CitizenLetter) -> tuple[str, str]:
    """The code printed on a sealed letter, and the letter's text (as the mail room would read it)."""
    pdf = letters.open_letter(hub.custody, letter).decode("latin-1")
    found = CODE.findall(pdf)
    assert len(found) == 1, "one code per letter"
    return found[0], pdf


def raw_database(hub: Hub) -> bytes:
    """Every stored byte of the letter, device and contact tables (what a stolen database shows)."""
    out = b""
    with hub.engine.connect() as connection:
        for table in ("citizen_letter", "citizen_device", "citizen_contact"):
            for row in connection.execute(text(f"SELECT * FROM {table}")):
                out += b"|".join(v if isinstance(v, bytes) else str(v).encode() for v in row)
    return out


def events(hub: Hub) -> int:
    with hub.session() as session:
        return int(session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def test_a_leaked_identity_opens_nothing_a_postal_code_opens_once(populated: Hub, delivery: Path) -> None:
    hub = populated
    person = people(delivery)[3]
    index = hub.pseudonymiser.index(person["BEN_NIR"])
    ask = {"nir": person["BEN_NIR"], "last_name": person["NOM"], "birth_date": person["DATE_NAISSANCE"]}
    with hub.session() as session:
        identity = hub.vault(session).find(person["BEN_NIR"])
        assert identity is not None and identity.address
    added = []
    for wrong in ({"birth_date": "1900-01-01"}, {}, {}):  # a wrong guess, then the leaked fields twice
        before = events(hub)
        with hub.session() as session:
            Citizens(hub, session).request_letter(**(ask | wrong), source=SOURCE)  # says nothing (returns None)
            session.commit()
        added.append(events(hub) - before)
    assert added == [1, 1, 1]  # the public log's size does not tell a match either
    # The right details queue ONE letter (one live letter per period), never an account.
    [letter] = letters_of(hub, index, Purpose.ACTIVATION)
    with hub.session() as session:
        assert session.execute(text("SELECT count(*) FROM account WHERE person_index IS NOT NULL")).scalar() == 0
    # A fourth request for this NIR within the window is limited (per blind index, in the database): the answer is
    # 429 (LetterLimited) whether or not the details match, and it queues no second letter while one is live.
    for typed in (ask, ask | {"birth_date": "1900-01-01"}):
        with hub.session() as session:
            answer = Citizens(hub, session).request_letter(**typed, source="198.51.100.1")
            session.commit()
        assert isinstance(answer, LetterLimited)
    assert len(letters_of(hub, index, Purpose.ACTIVATION)) == 1

    code, pdf = code_in(hub, letter)
    assert identity.last_name in pdf and identity.address in pdf and "Vérifier que ce courrier" in pdf
    assert "Vous n'avez rien demandé" in pdf
    stored = raw_database(hub)
    for secret in (code, code.replace("-", ""), identity.last_name, identity.address, person["BEN_NIR"]):
        assert secret.encode() not in stored
    with hub.session() as session:
        recorded = " ".join(str(e.as_dict()) for e in session.scalars(select(AuditEvent)))
    assert code not in recorded and person["BEN_NIR"] not in recorded and identity.last_name not in recorded

    # The mail room prints: a 0600 PDF, the sealed copy erased, the act recorded.
    with hub.session() as session:
        printed = letters.print_letters(hub, session, "console", delivery.parent / "printed")
        session.commit()
    assert len(printed.files) == 1 and stat.S_IMODE(printed.files[0].stat().st_mode) == 0o600
    assert printed.files[0].read_bytes().startswith(b"%PDF") and code.encode() in printed.files[0].read_bytes()
    [done] = letters_of(hub, index, Purpose.ACTIVATION)
    assert done.printed_at is not None and done.sealed is None and done.wrapped_key is None

    def activate(code: str, nir: str, username: str) -> None:
        with hub.session() as session:
            Citizens(hub, session).activate(code=code, nir=nir, username=username, password=PASSWORD, source=SOURCE)
            session.commit()

    other = people(delivery)[4]["BEN_NIR"]
    refusals = set()
    for attempt in (("ABCD-EFGH-JKMN-PQRS", person["BEN_NIR"]), (code, other)):  # wrong code; right code, wrong NIR
        with pytest.raises(Denied) as refused:
            activate(*attempt, "thief")
        refusals.add(refused.value.message)
    activate(code.lower().replace("-", " "), person["BEN_NIR"], "owner")  # typed loosely, still the code
    # A letter to the same address says the account was opened (a code taken from the print spool is found out).
    [opened] = letters_of(hub, index, Purpose.ACCOUNT_OPENED)
    opened_pdf = letters.open_letter(hub.custody, opened).decode("latin-1")
    assert "a été ouvert le" in opened_pdf and identity.address in opened_pdf and not CODE.findall(opened_pdf)
    with pytest.raises(Denied) as refused:  # single use
        activate(code, person["BEN_NIR"], "again")
    refusals.add(refused.value.message)
    assert refusals == {letters.CODE_REFUSAL}
    with hub.session() as session:
        enrolled = session.scalars(select(AuditEvent).where(AuditEvent.action == "citizen.enrol")).all()
        assert [e.detail.get("via") for e in enrolled] == ["post"]


def test_an_expired_code_is_refused(populated: Hub, delivery: Path) -> None:
    hub = populated
    person = people(delivery)[5]
    with hub.session() as session:
        Citizens(hub, session).request_letter(nir=person["BEN_NIR"], last_name=person["NOM"],
                                              birth_date=person["DATE_NAISSANCE"], source=SOURCE)  # fmt: skip
        session.commit()
    [letter] = letters_of(hub, hub.pseudonymiser.index(person["BEN_NIR"]), Purpose.ACTIVATION)
    code, _ = code_in(hub, letter)
    with hub.session() as session:
        session.execute(update(CitizenLetter).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        session.commit()
    with hub.session() as session, pytest.raises(Denied):
        Citizens(hub, session).activate(code=code, nir=person["BEN_NIR"], username="late", password=PASSWORD,
                                        source=SOURCE)  # fmt: skip
    # The attack of the review: with the victim's leaked NIR, wrong codes from many sources used to spend the
    # per-person allowance, and then the victim's own right code got 429 for a day. Now the code is checked first:
    # only wrong codes are counted, past the limit a wrong code is 429, the right one still opens the account.
    with hub.session() as session:  # the expired letter is not live: a new one may be asked for
        assert (
            Citizens(hub, session).request_letter(
                nir=person["BEN_NIR"], last_name=person["NOM"], birth_date=person["DATE_NAISSANCE"], source=SOURCE
            )
            is None
        )
        session.commit()  # fmt: skip
    fresh = letters_of(hub, hub.pseudonymiser.index(person["BEN_NIR"]), Purpose.ACTIVATION)[-1]
    code, _ = code_in(hub, fresh)
    for attempt in range(hub.settings.citizen_code_attempts_per_person + 1):
        expected = Denied if attempt < hub.settings.citizen_code_attempts_per_person - 1 else Limited
        with hub.session() as session, pytest.raises(expected):
            Citizens(hub, session).activate(code="ABCD-EFGH-JKMN-PQRS", nir=person["BEN_NIR"], username="x",
                                            password=PASSWORD, source=f"192.0.2.{attempt}")  # fmt: skip
    with hub.session() as session:  # the victim, with the letter, from their own address
        Citizens(hub, session).activate(code=code, nir=person["BEN_NIR"], username="owner5", password=PASSWORD,
                                        source="198.51.100.77")  # fmt: skip
        session.commit()


def test_wrong_details_never_keep_a_persons_letter_from_them(populated: Hub, delivery: Path) -> None:
    """The review's attack on letters: three requests with the victim's leaked NIR and a wrong birth date used to
    spend the per-NIR limit, so the victim's own request queued nothing for a day. Now the request is still handled
    past the limit (a letter queued if the details match and none is live); the answer is the same 429 whether the
    details matched or not. A NIR typed in fullwidth digits or with dots is the same NIR (no crash, same index)."""
    hub = populated
    person = people(delivery)[8]
    nir = person["BEN_NIR"]
    index = hub.pseudonymiser.index(nir)
    wrong = {"nir": nir, "last_name": person["NOM"], "birth_date": "1900-01-01"}
    for attempt in range(hub.settings.citizen_letter_requests_per_nir):
        with hub.session() as session:
            assert Citizens(hub, session).request_letter(**wrong, source=f"203.0.113.{attempt + 20}") is None
            session.commit()
    answers = []
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in nir)
    for typed in (wrong, wrong | {"birth_date": person["DATE_NAISSANCE"], "nir": fullwidth}):
        with hub.session() as session:
            answers.append(Citizens(hub, session).request_letter(**typed, source="198.51.100.9"))
            session.commit()
    assert [type(a) for a in answers] == [LetterLimited, LetterLimited]
    assert answers[0] is not None and answers[1] is not None and answers[0].message == answers[1].message
    assert len(letters_of(hub, index, Purpose.ACTIVATION)) == 1  # the victim's letter went all the same
    dotted = f"{nir[0]} {nir[1:3]}.{nir[3:5]}.{nir[5:7]}.{nir[7:10]} {nir[10:13]}.{nir[13:]}"  # stdnum strips " ."
    assert typed_nir(fullwidth) == typed_nir(dotted) == typed_nir(nir) == nir
    assert typed_nir("\u0661" + nir[1:]) is None  # other digits are not folded to ASCII: no NIR
    assert network_of("2001:db8:1:2::/64") == "2001:db8:1::/48" and network_of("203.0.113.7") is None


def test_mass_letter_requests_hit_a_global_cap_and_a_48(populated: Hub, delivery: Path) -> None:
    """Many sources (every /64 of a /48) asking letters for many NIRs: the /48 is counted too, and past the global
    cap every request is refused the same (429), nothing is queued, and the cap is recorded once for the DPO."""
    hub = populated
    hub.settings = hub.settings.model_copy(
        update={"citizen_letter_requests_per_network": 3, "citizen_letter_requests_per_day": 5}
    )
    crowd = people(delivery)[10:20]

    def ask(i: int, source: str) -> None:
        with hub.session() as session:
            Citizens(hub, session).request_letter(nir=crowd[i]["BEN_NIR"], last_name=crowd[i]["NOM"],
                                                  birth_date=crowd[i]["DATE_NAISSANCE"], source=source)  # fmt: skip
            session.commit()

    for i in range(3):  # three /64s of one /48
        ask(i, f"2001:db8:7:{i}::/64")
    with pytest.raises(Limited):
        ask(3, "2001:db8:7:99::/64")
    for i in range(3, 5):  # the cap is 5 in all: two more from elsewhere
        ask(i, f"203.0.113.{i}")
    refusals = set()
    for i in range(5, 8):
        with pytest.raises(Limited) as refused:
            ask(i, f"198.51.100.{i}")
        refusals.add(refused.value.message)
    assert len(refusals) == 1
    queued = [p for p in crowd if letters_of(hub, hub.pseudonymiser.index(p["BEN_NIR"]), Purpose.ACTIVATION)]
    assert len(queued) == 5
    with hub.session() as session:
        capped = session.scalars(select(AuditEvent).where(AuditEvent.action == "citizen.letter.cap")).all()
    assert len(capped) == 1


def breach_after_a_new_address(hub: Hub, nir: str) -> tuple[bytes, str, str]:
    """The vault gets a newer record with another address, then a leak naming the person is imported: letters go to
    the address held before it. Returns (person index, old address, new address)."""
    index = hub.pseudonymiser.index(nir)
    now = datetime.now(UTC)  # the population was delivered before the leak's import; the new record after it
    with hub.session() as session:
        vault = hub.vault(session)
        old = vault.find(nir)
        assert old is not None and old.address
        moved = dataclasses.replace(old, address="1 rue du Faussaire", postcode="99999", commune="AILLEURS")
        columns = {k: pa.array([v]) for k, v in dataclasses.asdict(moved).items()}
        session.add(BatchRow(batch_id="moved", producer="test", content_digest="moved" * 8, created_at="now",
                             accepted_at=now + timedelta(minutes=1), rows={}))  # fmt: skip
        vault.store(vault.seal(columns, "moved"))
        incident = BreachIncident(name="leak", status="notified", created_at=now,
                                  created_by="test", file_format="csv", file_name="x", file_key=None,
                                  retain_until=now + timedelta(days=30), mapping=[], counts={}, categories={},
                                  notified_at=now)  # fmt: skip
        session.add(incident)
        session.flush()
        notice = BreachNotice(incident_id=incident.id, person_index=index, categories=["postal address", "name"],
                              created_at=now)  # fmt: skip
        session.add(notice)
        session.add(BreachFlag(person_index=index, incident_id=incident.id, until=datetime.now(UTC) + timedelta(1)))
        session.flush()
        letters.queue_breach_letters(session, [(notice.id, index)])
        session.commit()
        assert hub.vault(session).find(nir).address == "1 rue du Faussaire"  # type: ignore[union-attr]
        postal = letters.postal_identity(hub, session, index)
        assert postal is not None and postal.address == old.address
    return index, old.address, "1 rue du Faussaire"


def test_a_person_named_in_a_breach_steps_up_and_is_never_locked_out(populated: Hub, delivery: Path) -> None:
    hub = populated
    person = people(delivery)[6]
    with hub.session() as session:  # enrolled at the counter before the breach
        account_id = Citizens(hub, session).enrol(nir=person["BEN_NIR"], last_name=person["NOM"],
                                                  birth_date=person["DATE_NAISSANCE"], username="victim",
                                                  password=PASSWORD).account.id  # fmt: skip
        session.commit()

    def login(device: str | None, code: str | None = None) -> None:
        with hub.session() as session:
            Accounts(session, hub.custody, hub.settings).login("victim", PASSWORD, None, device=device,
                                                               step_up_code=code)  # fmt: skip
            session.commit()

    login("browser-of-the-victim-0001")  # before the breach: remembered
    index, old_address, new_address = breach_after_a_new_address(hub, person["BEN_NIR"])

    with hub.session() as session:  # enrolment: only the strong paths
        citizens = Citizens(hub, session)
        with pytest.raises(Denied):
            citizens.check_strong(index, via="oidc", acr="eidas1")
        citizens.check_strong(index, via="oidc", acr="eidas2")
        citizens.check_strong(index, via="post")

    login("browser-of-the-victim-0001")  # a known device passes
    for device in (None, "browser-of-the-thief-0002"):
        with pytest.raises(StepUpNeeded) as stopped:
            login(device)
        assert not stopped.value.code_refused
    with hub.session() as session:
        assert Citizens(hub, session).request_step_up(index, Purpose.DEVICE) == "letter queued"
        assert Citizens(hub, session).request_step_up(index, Purpose.DEVICE) == "letter already on its way"
        session.commit()
    [letter] = letters_of(hub, index, Purpose.DEVICE)
    code, pdf = code_in(hub, letter)
    assert old_address in pdf and new_address not in pdf  # the address held before the breach
    with pytest.raises(StepUpNeeded) as stopped:
        login("browser-of-the-thief-0002", "ABCD-EFGH-JKMN-PQRS")
    assert stopped.value.code_refused
    login("browser-of-the-victim-0003", code)  # the letter vouches for the new device
    login("browser-of-the-victim-0003")
    with pytest.raises(StepUpNeeded):
        login("browser-of-the-thief-0002", code)  # used once already

    # Contact details: without a code a letter goes out and nothing changes; with it the change is stored sealed.
    actor = Actor(account_id=account_id, role=Role.CITIZEN, scopes=frozenset({Scope.CITIZEN}), via="session")
    change = {"email": "victim@example.org", "phone": "06 12 34 56 78"}
    with hub.session() as session:
        done = Citizens(hub, session).change_contact(actor, **change, code=None, source=SOURCE)
        session.commit()
    assert (done.changed, done.letter) == (False, True)
    [letter] = letters_of(hub, index, Purpose.CONTACT)
    code, _ = code_in(hub, letter)
    for attempt in range(hub.settings.citizen_code_attempts_per_person + 1):  # wrong codes: 403, then 429
        expected = Denied if attempt < hub.settings.citizen_code_attempts_per_person else Limited
        with hub.session() as session, pytest.raises(expected):
            Citizens(hub, session).change_contact(actor, **change, code="ABCD-EFGH-JKMN-PQRS",
                                                  source=f"192.0.2.{attempt}")  # fmt: skip
    with hub.session() as session:
        assert Citizens(hub, session).change_contact(actor, **change, code=code, source=SOURCE).changed
        session.commit()
    with hub.session() as session:
        assert Citizens(hub, session).contact(actor) == change
    assert b"victim@example.org" not in raw_database(hub)

    # The breach notice by post: to the old address, the categories only, never the leaked values.
    with hub.session() as session:
        printed = letters.print_letters(hub, session, "console", delivery.parent / "notices",
                                        purpose=Purpose.BREACH_NOTICE)  # fmt: skip
        session.commit()
    [notice] = printed.files
    body = notice.read_bytes().decode("latin-1")
    assert "adresse postale" in body and old_address in body and new_address not in body
    assert person["BEN_NIR"] not in body and "Vérifier que ce courrier" in body


def test_letter_words_cover_every_breach_category() -> None:
    from hygie.breach.mapping import CATEGORY
    from hygie.portal.pages.citizen import EXPOSED

    assert set(CATEGORY.values()) <= set(letters.EXPOSED_FR) and letters.EXPOSED_FR == EXPOSED


def test_the_audit_log_growth_does_not_tell_a_right_password_for_a_flagged_person(
    populated: Hub, delivery: Path
) -> None:
    """Polling the public checkpoint used to show 2 new leaves for a right password of a flagged person on a new
    device and 1 for any other refusal: every refusal now adds the same actions and outcomes."""
    from hygie.governance.citizens import sign_in
    from hygie.governance.errors import Unauthenticated

    hub = populated
    ps = people(delivery)
    for i, name in ((6, "victim2"), (7, "plain2")):
        with hub.session() as session:
            Citizens(hub, session).enrol(nir=ps[i]["BEN_NIR"], last_name=ps[i]["NOM"],
                                         birth_date=ps[i]["DATE_NAISSANCE"], username=name,
                                         password=PASSWORD)  # fmt: skip
            session.commit()
    breach_after_a_new_address(hub, ps[6]["BEN_NIR"])
    junk = "ABCD-EFGH-JKMN-PQRS"
    cases = {
        "wrong password": {"username": "victim2", "password": "wrong-password-xx"},
        "unknown user": {"username": "nobody-at-all", "password": "wrong-password-xx"},
        "plain, junk code": {"username": "plain2", "password": "bad-password-xxx", "step_up_code": junk},
        "right password, flagged, new device": {"username": "victim2", "password": PASSWORD},
        "right password, flagged, junk code": {"username": "victim2", "password": PASSWORD, "step_up_code": junk},
    }
    seen = {}
    for n, (case, kwargs) in enumerate(cases.items()):
        with hub.session() as session:
            last = session.scalar(select(func.max(AuditEvent.id))) or 0
        with pytest.raises(Unauthenticated):
            sign_in(hub, totp=None, device=f"new-device-{n:020d}", source=f"198.51.100.{n}", **kwargs)  # type: ignore[arg-type]
        with hub.session() as session:
            added = session.scalars(select(AuditEvent).where(AuditEvent.id > last).order_by(AuditEvent.id)).all()
            seen[case] = [(e.action, e.outcome, e.project_id) for e in added]  # what the public leaf can show
    assert len({tuple(v) for v in seen.values()}) == 1, seen
