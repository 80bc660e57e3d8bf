# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Letters by post: one-time codes sent to the address held in the vault, and the insurer's sealed outbox.

A citizen proves possession of their postal address with a one-time code printed on a letter: opening an account
(``activation``), trusting a new device for a breach-flagged person (``device``), changing the contact details of
a breach-flagged person (``contact``). Breach notices go by post too (``breach_notice``: no code, never the leaked
data). The letter goes to the address the vault held *before* the person's first breach when they are flagged
(:func:`postal_identity`): the leaked file cannot redirect it, and a later re-delivery cannot either.

Codes are 16 characters of Crockford base32 (80 random bits), grouped by four, valid
``citizen_letter_valid_days``, used once (a conditional UPDATE), stored only as an HMAC-SHA-256 under the custody
key ``citizen-letter-code``; the clear code exists only inside the sealed letter. A letter's PDF (names, address,
code) is sealed with AES-256-GCM under a fresh data key wrapped by the custody key ``citizen-letters``; a breach
notice letter is rendered only when it is printed (from the vault and the notice). Printing (``hygie outbox
print``, an operator with the hub's keys) is where identities leave the vault, by design: the mail room needs a
name and an address on paper. A printed letter's sealed copy is erased.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import (
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from hygie.audit import record
from hygie.config import Settings
from hygie.db import Base
from hygie.governance.errors import Denied, Unauthenticated
from hygie.hub import Hub
from hygie.i18n import N_
from hygie.identity.vault import Identity, IdentityRow, RawBytes
from hygie.keys import KeyCustody, KeyPurpose

LETTER_KEY = "citizen-letters"
"""Custody key (wrap) of the letters' and contact details' data keys."""
CODE_KEY = "citizen-letter-code"
"""Custody key (HMAC) under which one-time codes are stored."""
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""Crockford base32: no I, L, O or U, so a code is read and typed without confusion."""
CODE_CHARS = 16
"""16 characters of 5 bits: 80 random bits."""
NONCE_BYTES = 12
CODE = re.compile(r"\b[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){3}\b")
"""How a code reads on a letter (the mail room's tools and the tests find it with this)."""


class Purpose(StrEnum):
    ACTIVATION = "activation"
    DEVICE = "device"
    CONTACT = "contact"
    BREACH_NOTICE = "breach_notice"
    ACCOUNT_OPENED = "account_opened"
    """No code: tells the person their account was opened with a postal code (``Citizens.activate``)."""


class CitizenLetter(Base):
    """A letter in the outbox. Holds no identifier in clear: the person by blind index, the PDF sealed, the code
    as an HMAC."""

    __tablename__ = "citizen_letter"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_index: Mapped[bytes] = mapped_column(RawBytes(32), nullable=False, index=True)
    purpose: Mapped[str] = mapped_column(String(20), nullable=False)
    code_digest: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True, index=True)
    notice_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """For a breach notice letter: the ``breach_notice`` it carries (rendered when printed)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    nonce: Mapped[bytes | None] = mapped_column(LargeBinary(NONCE_BYTES), nullable=True)
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    """The letter's PDF, AES-256-GCM; erased once printed."""
    printed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    printed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)


class CitizenDevice(Base):
    """A browser a citizen signed in from (a digest of its device cookie): a breach-flagged person signing in from
    any other needs a postal code or the identity provider first."""

    __tablename__ = "citizen_device"
    __table_args__ = (UniqueConstraint("account_id", "digest", name="uq_citizen_device"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), nullable=False, index=True)
    digest: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    via: Mapped[str] = mapped_column(String(20), nullable=False)
    """'sign-in' (trusted as it came), 'post' (a postal code), 'oidc' (the provider at the strong level)."""


class CitizenContact(Base):
    """The notice e-mail and phone a citizen chose, sealed like the vault's records; the newest row is current."""

    __tablename__ = "citizen_contact"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_index: Mapped[bytes] = mapped_column(RawBytes(32), nullable=False, index=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    nonce: Mapped[bytes] = mapped_column(LargeBinary(NONCE_BYTES), nullable=False)
    sealed: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    via: Mapped[str] = mapped_column(String(20), nullable=False)


CODE_REFUSAL = N_(
    "this code is not valid: it may be mistyped, already used or expired, or the details typed with it do not "
    "match; check the letter, or ask for a new one"
)
"""The one answer to every refused code: it never tells which part was wrong."""


class StepUpNeeded(Unauthenticated):
    """A breach-flagged citizen signs in from a device not seen before: a postal code or the identity provider at
    the strong level is needed first. A subclass of :class:`Unauthenticated`, so any caller that does not know
    step-up refuses the sign-in; raised only once the password was right, so its text is the one refusal of every
    sign-in (``accounts.REFUSED``): it must never tell that the password was right or that the person is flagged."""

    def __init__(self, account_id: int, person_index: bytes) -> None:
        super().__init__(N_("wrong username, password or code"))
        self.account_id = account_id
        self.person_index = person_index
        self.code_refused = False
        """True when a postal code was given and refused (the same answer as any refused code)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# -- codes ------------------------------------------------------------------------------------------------


def new_code() -> str:
    """80 random bits as ``XXXX-XXXX-XXXX-XXXX`` (Crockford base32)."""
    chars = "".join(secrets.choice(ALPHABET) for _ in range(CODE_CHARS))
    return "-".join(chars[i : i + 4] for i in range(0, CODE_CHARS, 4))


def normal_code(text: str) -> str:
    """A typed code as stored: spaces and dashes dropped, upper case, O read as 0 and I or L as 1 (Crockford)."""
    kept = "".join(text.split()).replace("-", "").upper()
    return kept.translate(str.maketrans("OIL", "011"))


def code_digest(custody: KeyCustody, code: str) -> bytes:
    custody.ensure(CODE_KEY, KeyPurpose.PSEUDONYM)
    return custody.mac(CODE_KEY, [b"hygie/letter-code/v1\x00" + normal_code(code).encode("ascii", "replace")])[0]


# -- sealing ----------------------------------------------------------------------------------------------


def _seal(custody: KeyCustody, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes, bytes]:
    custody.ensure(LETTER_KEY, KeyPurpose.WRAP)
    data_key = secrets.token_bytes(32)
    nonce = secrets.token_bytes(NONCE_BYTES)
    return custody.wrap(LETTER_KEY, data_key, aad), nonce, AESGCM(data_key).encrypt(nonce, plaintext, aad)


def _open(custody: KeyCustody, wrapped: bytes, nonce: bytes, sealed: bytes, aad: bytes) -> bytes:
    return AESGCM(custody.unwrap(LETTER_KEY, wrapped, aad)).decrypt(nonce, sealed, aad)


def _letter_aad(letter: CitizenLetter) -> bytes:
    return b"hygie/letter/v1|" + letter.purpose.encode() + b"|" + bytes(letter.person_index)


def _contact_aad(person_index: bytes) -> bytes:
    return b"hygie/contact/v1|" + bytes(person_index)


def open_letter(custody: KeyCustody, letter: CitizenLetter) -> bytes:
    """The sealed PDF of a letter not yet printed (the mail room's step; tests read the code this way)."""
    if letter.sealed is None or letter.wrapped_key is None or letter.nonce is None:
        raise LookupError(f"letter {letter.id} holds no sealed copy (printed, or rendered only when printed)")
    return _open(custody, letter.wrapped_key, letter.nonce, letter.sealed, _letter_aad(letter))


# -- the address ------------------------------------------------------------------------------------------


def first_breach_at(session: Session, person_index: bytes) -> datetime | None:
    """When the first leak naming this person was imported (any flag, even an expired one), or None."""
    from hygie.breach.models import BreachFlag, BreachIncident

    found = session.scalar(
        select(func.min(BreachIncident.created_at))
        .join(BreachFlag, BreachFlag.incident_id == BreachIncident.id)
        .where(BreachFlag.person_index == person_index)
    )
    return _aware(found) if found is not None else None


def postal_identity(hub: Hub, session: Session, person_index: bytes) -> Identity | None:
    """The identity a letter goes to: the newest vault record, or for a person named in a breach the newest record
    delivered before the first such breach was imported. None when there is none."""
    from hygie.warehouse.catalog import BatchRow

    query = select(IdentityRow.id, IdentityRow.key_id, IdentityRow.nonce, IdentityRow.sealed).where(
        IdentityRow.person_index == person_index
    )
    cutoff = first_breach_at(session, person_index)
    if cutoff is not None:
        query = query.join(BatchRow, BatchRow.batch_id == IdentityRow.batch_id).where(BatchRow.accepted_at < cutoff)
    row = session.execute(query.order_by(IdentityRow.id.desc()).limit(1)).first()
    if row is None:
        return None
    vault = hub.vault(session)
    return vault._open(row[0], person_index, row[1], bytes(row[2]), bytes(row[3]))  # one record, this person


def has_address(identity: Identity | None) -> bool:
    return identity is not None and bool(identity.address) and bool(identity.postcode) and bool(identity.commune)


# -- the PDF ----------------------------------------------------------------------------------------------

SUBJECTS = {
    Purpose.ACTIVATION: "Votre code d'activation du compte en ligne",
    Purpose.DEVICE: "Confirmer une connexion depuis un nouvel appareil",
    Purpose.CONTACT: "Confirmer le changement de vos coordonnées",
    Purpose.BREACH_NOTICE: "Vos données personnelles ont été exposées dans une fuite",
    Purpose.ACCOUNT_OPENED: "Votre compte en ligne a été ouvert",
}
INTROS = {
    Purpose.ACTIVATION: "Vous avez demandé à ouvrir votre compte en ligne. Voici votre code d'activation, à usage "
    "unique. Pour ouvrir votre compte, allez sur {portal}/citoyen/activation, saisissez ce code et votre numéro de "
    "sécurité sociale, puis choisissez un identifiant et un mot de passe.",
    Purpose.DEVICE: "Quelqu'un s'est connecté à votre compte depuis un appareil que nous ne connaissions pas. Si "
    "c'est vous, saisissez ce code sur la page {portal}/citoyen/appareil, depuis cet appareil.",
    Purpose.CONTACT: "Vous avez demandé à changer l'adresse électronique ou le téléphone où nous vous prévenons. "
    "Si c'est vous, saisissez ce code sur la page {portal}/citoyen/coordonnees pour confirmer le changement.",
    Purpose.ACCOUNT_OPENED: "Votre compte en ligne a été ouvert le {date} avec le code d'activation que nous vous "
    "avions envoyé par courrier. Si ce n'est pas vous, appelez sans attendre le numéro inscrit sur votre "
    "attestation de droits ou votre carte : nous fermerons ce compte et vous en enverrons un nouveau code.",
}
GENUINE = (
    "Vérifier que ce courrier vient de nous : appelez le numéro inscrit sur votre attestation de droits ou votre "
    "carte (jamais un numéro donné dans un courrier, un courriel ou un SMS) et citez la référence {reference}. "
    "Nous ne vous demanderons jamais ce code, ni votre mot de passe, par téléphone, courriel ou SMS."
)
NOT_ASKED = (
    "Vous n'avez rien demandé ? N'utilisez pas ce code et ne le communiquez à personne : il expirera seul. "
    "Quelqu'un a peut-être essayé d'agir à votre place : signalez-le à votre caisse au numéro de votre attestation."
)
EXPOSED_FR: dict[str, str] = {
    "social security number": "numéro de sécurité sociale",
    "name": "nom et prénom",
    "birth date": "date de naissance",
    "postal address": "adresse postale",
    "e-mail address": "adresse électronique",
    "phone number": "numéro de téléphone",
    "sex": "sexe",
    "health data (blood group)": "donnée de santé (groupe sanguin)",
    "doctor": "médecin",
    "insurer": "organisme d'assurance",
    "health data (diagnoses, results)": "données de santé (diagnostics, résultats)",
    "health data (treatments)": "données de santé (traitements)",
    "free text (may hold health data)": "texte libre (peut contenir des données de santé)",
    "other data": "autres données",
}
"""The breach categories in French (the same words as the citizen's page, ``hygie.portal.pages.citizen.EXPOSED``)."""
BREACH_ADVICE = [
    "Méfiez-vous des appels, SMS et courriels qui disent venir de votre caisse : elle ne demande jamais de mot de "
    "passe ni de code.",
    "Vérifiez vos remboursements dans votre compte et signalez ceux que vous n'avez pas demandés.",
    "Pendant quelque temps, ouvrir un compte, vous connecter depuis un nouvel appareil ou changer de coordonnées "
    "demande un code envoyé par courrier à l'adresse que nous avions avant la fuite.",
]


def _latin1(text: str) -> str:
    # The PDF's core font (Helvetica) is Latin-1: French fits; anything else is replaced, never dropped silently.
    return text.replace("\u2019", "'").replace("\u00a0", " ").encode("latin-1", "replace").decode("latin-1")


def render(settings: Settings, identity: Identity, *, reference: str, subject: str, paragraphs: list[str],
           code: str | None = None, valid_until: datetime | None = None) -> bytes:  # fmt: skip
    """A one-page A4 letter: the insurer's header, the address in the envelope window, the body, the code."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_compression(False)  # sealed as a whole; plain content lets the mail room's tools read it
    pdf.set_creator("Hygie")
    pdf.set_auto_page_break(True, 15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 13)
    pdf.cell(0, 7, _latin1(settings.citizen_insurer_name), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    pdf.multi_cell(90, 4.5, _latin1(settings.citizen_insurer_address), new_x="LMARGIN", new_y="NEXT")
    pdf.set_xy(110, 45)
    pdf.set_font("Helvetica", "", 11)
    lines = [f"{identity.first_name} {identity.last_name}", identity.address or "",
             f"{identity.postcode or ''} {identity.commune or ''}".strip()]  # fmt: skip
    pdf.multi_cell(85, 5.5, _latin1("\n".join(lines)), new_x="LMARGIN", new_y="NEXT")
    pdf.set_y(85)
    pdf.set_font("Helvetica", "", 9)
    pdf.cell(0, 5, _latin1(f"Référence : {reference} - le {_now():%d/%m/%Y}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("Helvetica", "B", 11)
    pdf.multi_cell(0, 6, _latin1(f"Objet : {subject}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font("Helvetica", "", 10.5)
    pdf.multi_cell(0, 5.5, "Madame, Monsieur,", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)
    for paragraph in paragraphs[:1]:
        pdf.multi_cell(0, 5.5, _latin1(paragraph), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
    if code is not None and valid_until is not None:
        pdf.set_font("Courier", "B", 18)
        pdf.cell(0, 12, code, align="C", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 10.5)
        pdf.cell(0, 6, _latin1(f"Code à usage unique, valable jusqu'au {valid_until:%d/%m/%Y}."), align="C",
                 new_x="LMARGIN", new_y="NEXT")  # fmt: skip
        pdf.ln(3)
    for paragraph in paragraphs[1:]:
        pdf.multi_cell(0, 5.5, _latin1(paragraph), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
    return bytes(pdf.output())


# -- the outbox -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    letter: CitizenLetter
    code: str
    """The clear code: only for the caller's own use in process (never returned over HTTP, never logged)."""


def live_letter(session: Session, person_index: bytes, purpose: Purpose, settings: Settings) -> CitizenLetter | None:
    """The person's letter of this purpose made within the period (``citizen_letter_period_days``) that is neither
    used nor expired: at most one at a time, so requests cannot flood a mailbox."""
    now = _now()
    since = now - timedelta(days=settings.citizen_letter_period_days)
    found = session.scalars(
        select(CitizenLetter)
        .where(CitizenLetter.person_index == person_index, CitizenLetter.purpose == purpose.value)
        .where(CitizenLetter.created_at > since, CitizenLetter.used_at.is_(None))
        .order_by(CitizenLetter.id.desc())
    ).first()
    if found is None or (found.expires_at is not None and _aware(found.expires_at) <= now):
        return None
    return found


def issue(hub: Hub, session: Session, person_index: bytes, identity: Identity, purpose: Purpose) -> Issued:
    """Queue a sealed letter with a new one-time code to ``identity``'s address (the caller records the act)."""
    if purpose is Purpose.BREACH_NOTICE:
        raise ValueError("breach notice letters carry no code: see queue_breach_letters")
    settings = hub.settings
    code = new_code()
    now = _now()
    expires = now + timedelta(days=settings.citizen_letter_valid_days)
    digest = code_digest(hub.custody, code)
    letter = CitizenLetter(person_index=person_index, purpose=purpose.value, code_digest=digest, created_at=now,
                           expires_at=expires)  # fmt: skip
    session.add(letter)
    session.flush()
    assert letter.expires_at is not None
    portal = settings.enrolment_portal_url.rstrip("/")
    reference = f"L-{letter.id}"
    paragraphs = [INTROS[purpose].format(portal=portal), GENUINE.format(reference=reference), NOT_ASKED]
    pdf = render(settings, identity, reference=reference, subject=SUBJECTS[purpose], paragraphs=paragraphs,
                 code=code, valid_until=letter.expires_at)  # fmt: skip
    letter.wrapped_key, letter.nonce, letter.sealed = _seal(hub.custody, pdf, _letter_aad(letter))
    # Not recorded here: the caller's one event says what came of the request (a second event only when a letter
    # is queued would tell, through the public log's size, that typed details matched).
    return Issued(letter, code)


def issue_notice(
    hub: Hub, session: Session, person_index: bytes, identity: Identity, purpose: Purpose
) -> CitizenLetter:
    """Queue a sealed letter that carries no code (``account_opened``) to ``identity``'s address; printed like the
    others (the caller records the act)."""
    if purpose is not Purpose.ACCOUNT_OPENED:
        raise ValueError("only the account-opened letter is a notice without a code")
    now = _now()
    letter = CitizenLetter(person_index=person_index, purpose=purpose.value, created_at=now)
    session.add(letter)
    session.flush()
    reference = f"L-{letter.id}"
    paragraphs = [INTROS[purpose].format(date=now.strftime("%d/%m/%Y")), GENUINE.format(reference=reference)]
    pdf = render(hub.settings, identity, reference=reference, subject=SUBJECTS[purpose], paragraphs=paragraphs)
    letter.wrapped_key, letter.nonce, letter.sealed = _seal(hub.custody, pdf, _letter_aad(letter))
    return letter


DECOY = Identity(nir="", rng_gem="", last_name="DECOY", first_name="Decoy", birth_date="", address="1 rue Decoy",
                 postcode="00000", commune="DECOY", phone=None, email=None)  # fmt: skip


def decoy(hub: Hub) -> None:
    """The work of :func:`issue` (a code, its HMAC, a PDF, sealing), thrown away: a letter request that queues
    nothing takes as long as one that queues a letter, so response time does not tell whether details matched."""
    code = new_code()
    code_digest(hub.custody, code)
    paragraphs = [INTROS[Purpose.ACTIVATION], GENUINE, NOT_ASKED]
    pdf = render(hub.settings, DECOY, reference="L-0", subject=SUBJECTS[Purpose.ACTIVATION], paragraphs=paragraphs,
                 code=code, valid_until=_now())  # fmt: skip
    _seal(hub.custody, pdf, b"hygie/letter/decoy")


def redeem(session: Session, custody: KeyCustody, code: str, *, purpose: Purpose, person_index: bytes) -> CitizenLetter:
    """Spend a one-time code of this purpose sent to this person: once (a conditional UPDATE, so two requests with
    the same code cannot both pass), before it expires. Every refusal is :data:`CODE_REFUSAL`."""
    normal = normal_code(code)
    if len(normal) != CODE_CHARS or any(c not in ALPHABET for c in normal):
        raise Denied(CODE_REFUSAL)
    digest = code_digest(custody, normal)
    now = _now()
    letter = session.scalars(
        select(CitizenLetter).where(CitizenLetter.code_digest == digest, CitizenLetter.purpose == purpose.value)
    ).first()
    if letter is None or bytes(letter.person_index) != bytes(person_index) or letter.used_at is not None:
        raise Denied(CODE_REFUSAL)
    if letter.expires_at is None or _aware(letter.expires_at) <= now:
        raise Denied(CODE_REFUSAL)
    spent = session.execute(
        update(CitizenLetter)
        .where(CitizenLetter.id == letter.id, CitizenLetter.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(spent, "rowcount", 0) != 1:
        raise Denied(CODE_REFUSAL)
    session.refresh(letter)
    return letter


def queue_breach_letters(session: Session, notices: list[tuple[int, bytes]]) -> int:
    """A postal copy of each breach notice ((notice id, person index) pairs), rendered when printed."""
    now = _now()
    session.add_all(CitizenLetter(person_index=person_index, purpose=Purpose.BREACH_NOTICE.value, notice_id=notice_id,
                                  created_at=now) for notice_id, person_index in notices)  # fmt: skip
    return len(notices)


def _breach_pdf(hub: Hub, session: Session, letter: CitizenLetter, identity: Identity) -> bytes:
    from hygie.breach.models import BreachIncident, BreachNotice

    notice = session.get(BreachNotice, letter.notice_id)
    if notice is None:
        raise LookupError(f"letter {letter.id}: its breach notice is gone")
    incident = session.get(BreachIncident, notice.incident_id)
    name = incident.name if incident is not None else "?"
    exposed = ", ".join(EXPOSED_FR.get(c, c) for c in notice.categories) or "—"
    reference = f"L-{letter.id}"
    paragraphs = [
        f"Des données personnelles vous concernant figuraient dans un fichier publié ou diffusé sans autorisation "
        f"(incident « {name} », notifié le {_aware(notice.created_at):%d/%m/%Y}). Catégories de données exposées : "
        f"{exposed}. Ce courrier ne reprend aucune des données exposées.",
        *BREACH_ADVICE,
        "Le détail est dans votre compte en ligne, rubrique « Violations de données me concernant ».",
        GENUINE.format(reference=reference),
    ]
    return render(hub.settings, identity, reference=reference, subject=SUBJECTS[Purpose.BREACH_NOTICE],
                  paragraphs=paragraphs)  # fmt: skip


@dataclass(frozen=True)
class Printed:
    files: list[Path]
    skipped: dict[str, int]


def pending(session: Session, purpose: Purpose | None = None, limit: int | None = None) -> list[CitizenLetter]:
    query = select(CitizenLetter).where(CitizenLetter.printed_at.is_(None)).order_by(CitizenLetter.id).limit(limit)
    if purpose is not None:
        query = query.where(CitizenLetter.purpose == purpose.value)
    return list(session.scalars(query))


def _output_directory(out: Path) -> int:
    """An open descriptor of ``out``, made 0700 if missing; refused (:class:`Denied`, recorded by the caller's act)
    unless it is a directory owned by the user running this and writable by nobody else: the PDFs hold names,
    addresses and codes, and a directory others can write to lets them plant files or links for us to write into."""
    import stat

    with contextlib.suppress(FileExistsError):
        out.mkdir(mode=0o700, parents=True)
    try:
        fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise Denied(
            N_(
                "the output directory {directory} cannot be opened ({error}): choose another --out",
                directory=str(out),
                error=exc.strerror,
            )
        ) from None
    info = os.fstat(fd)
    problem: str | None = None
    if info.st_uid != os.geteuid():
        problem = N_(
            "the output directory {directory} is not owned by the user running this command: letters hold names and "
            "addresses; use a directory of your own (e.g. a new one: it is created with mode 0700) or chmod go-w it",
            directory=str(out),
        )
    elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = N_(
            "the output directory {directory} can be written by other users: letters hold names and addresses; use "
            "a directory of your own (e.g. a new one: it is created with mode 0700) or chmod go-w it",
            directory=str(out),
        )
    if problem is not None:
        os.close(fd)
        raise Denied(problem)
    return fd


def print_letters(hub: Hub, session: Session, actor: str, out: Path, *, purpose: Purpose | None = None,
                  limit: int | None = None, operator: str | None = None) -> Printed:  # fmt: skip
    """Write the pending letters as PDF files (mode 0600) into ``out`` for the mail room, mark them printed and
    erase their sealed copy. This is where names and addresses leave the vault, by design; it is recorded, with
    ``operator`` (the operating-system user running the print) on the record and on each letter.

    ``out`` must be a directory of the user running this that nobody else can write to (a missing one is created
    0700). Each file is created anew (``O_EXCL | O_NOFOLLOW``, mode 0600) under a name with a random part: a file
    or link planted in advance is never written through. If writing fails, the files of this run are removed and
    nothing is marked printed."""
    directory = _output_directory(out)
    try:
        return _print_into(hub, session, actor, out, directory, purpose=purpose, limit=limit, operator=operator)
    finally:
        os.close(directory)


def _print_into(hub: Hub, session: Session, actor: str, out: Path, directory: int, *, purpose: Purpose | None,
                limit: int | None, operator: str | None) -> Printed:  # fmt: skip
    now = _now()
    printed_by = f"{actor} ({operator})"[:100] if operator else actor
    files: list[Path] = []
    skipped: dict[str, int] = {}
    for letter in pending(session, purpose, limit):
        if letter.used_at is not None or (letter.expires_at is not None and _aware(letter.expires_at) <= now):
            reason = "used" if letter.used_at is not None else "expired"
            pdf = None
        elif letter.purpose == Purpose.BREACH_NOTICE.value:
            identity = postal_identity(hub, session, bytes(letter.person_index))
            pdf = _breach_pdf(hub, session, letter, identity) if identity and has_address(identity) else None
            reason = "no postal address"
        else:
            pdf = open_letter(hub.custody, letter)
            reason = ""
        letter.printed_at, letter.printed_by = now, printed_by
        letter.wrapped_key = letter.nonce = letter.sealed = None
        if pdf is None:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        name = f"letter-{letter.id:08d}-{secrets.token_hex(4)}.pdf"
        try:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=directory)
            with os.fdopen(fd, "wb") as f:
                f.write(pdf)
        except OSError:
            for written in files:  # nothing half-done: the letters stay pending (the caller's act rolls back)
                with contextlib.suppress(OSError):
                    os.unlink(written.name, dir_fd=directory)
            raise
        files.append(out / name)
    detail = {"printed": len(files), "skipped": skipped, "purpose": purpose.value if purpose else "all",
              "operator": operator}  # fmt: skip
    record(session, actor=actor, action="outbox.print", detail=detail)
    return Printed(files, skipped)


# -- devices and contact details --------------------------------------------------------------------------


def device_digest(device: str) -> bytes:
    import hashlib

    return hashlib.sha256(b"hygie/device/v1\x00" + device.encode("utf-8", "replace")).digest()


def known_device(session: Session, account_id: int, device: str | None) -> bool:
    if not device:
        return False
    found = session.scalar(
        select(CitizenDevice.id).where(
            CitizenDevice.account_id == account_id, CitizenDevice.digest == device_digest(device)
        )
    )
    return found is not None


def trust_device(session: Session, account_id: int, device: str, via: str) -> None:
    """Remember a device for this account (``via``: 'sign-in', 'post', or 'oidc' once the provider vouched at the
    strong level: the hook the OpenID Connect sign-in calls for a flagged person)."""
    if not known_device(session, account_id, device):
        session.add(CitizenDevice(account_id=account_id, digest=device_digest(device), created_at=_now(), via=via))


def flagged(session: Session, person_index: bytes) -> bool:
    from hygie.breach.citizen import stronger_check_until

    return stronger_check_until(session, person_index) is not None


def check_sign_in(session: Session, custody: KeyCustody, account_id: int, person_index: bytes, device: str | None,
                  step_up_code: str | None) -> str | None:  # fmt: skip
    """The device check of a citizen's sign-in, once their password was right (``Accounts.login`` calls it).

    A person not flagged by a breach: their device is remembered. A flagged one from a device seen before: passes.
    From a new (or no) device: a postal code of purpose ``device`` sent to them passes and the device is
    remembered; otherwise :class:`StepUpNeeded`. Returns how the device was trusted, or None if it was known."""
    if not flagged(session, person_index):
        if device and not known_device(session, account_id, device):
            trust_device(session, account_id, device, "sign-in")
            return "sign-in"
        return None
    if known_device(session, account_id, device):
        return None
    if step_up_code and device:
        redeem(session, custody, step_up_code, purpose=Purpose.DEVICE, person_index=person_index)
        trust_device(session, account_id, device, "post")
        return "post"
    raise StepUpNeeded(account_id, person_index)


def store_contact(session: Session, custody: KeyCustody, person_index: bytes, values: dict[str, str | None],
                  via: str) -> None:  # fmt: skip
    import json

    plaintext = json.dumps(values, sort_keys=True).encode()
    wrapped, nonce, sealed = _seal(custody, plaintext, _contact_aad(person_index))
    session.add(CitizenContact(person_index=person_index, wrapped_key=wrapped, nonce=nonce, sealed=sealed,
                               created_at=_now(), via=via))  # fmt: skip


def contact_of(session: Session, custody: KeyCustody, person_index: bytes) -> dict[str, str | None] | None:
    """The notice e-mail and phone this person chose (newest), or None: for the notice senders."""
    import json

    row = session.scalars(
        select(CitizenContact).where(CitizenContact.person_index == person_index).order_by(CitizenContact.id.desc())
    ).first()
    if row is None:
        return None
    values: dict[str, str | None] = json.loads(
        _open(custody, row.wrapped_key, row.nonce, row.sealed, _contact_aad(person_index))
    )
    return values
