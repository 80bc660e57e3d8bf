# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The outbox: breach notices sent by e-mail through the one mail sender (:mod:`hygie.mail`: STARTTLS,
authentication, timeouts).

The address is read at send time (:func:`recipient`: the one the person chose through the step-up-protected contact
change, else their vault e-mail from before the breach) and lives only in memory while the message is handed to the
server; the outbox keeps the status, never the address. People without an e-mail address are marked 'letter': a
postal letter is due. A value that is not exactly one address (a list, a line break) is never sent: that message is
marked failed and the others go on.

A notice names the kinds of data exposed (``notice.categories``), never the leaked values themselves: a message
that repeated them would hand them to whoever reads the mailbox, and would teach phishers what a real notice looks
like. It tells the person how to check it is genuine: the same notice is shown in their personal space, reached by
typing the portal's address (the message holds no link), and the insurer never asks for a password, a code or bank
details. French first, then English.

Sending happens outside any database transaction that has written: the pending messages are read, the read
transaction ends, the messages go to the server, and only then are their statuses written and the act recorded.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hygie import mail
from hygie.audit import record
from hygie.breach.models import BreachIncident, BreachNotice, BreachOutbox
from hygie.config import Settings
from hygie.hub import Hub

MAX_ATTEMPTS = 5
SUBJECT = "Vos données figurent dans une fuite de données / Your data was in a data leak"

CATEGORY_FR = {
    "social security number": "numéro de sécurité sociale",
    "name": "nom et prénom",
    "birth date": "date de naissance",
    "postal address": "adresse postale",
    "e-mail address": "adresse e-mail",
    "phone number": "numéro de téléphone",
    "sex": "sexe",
    "health data (blood group)": "données de santé (groupe sanguin)",
    "doctor": "médecin",
    "insurer": "organisme d'assurance",
    "health data (diagnoses, results)": "données de santé (diagnostics, résultats)",
    "health data (treatments)": "données de santé (traitements)",
    "free text (may hold health data)": "texte libre (peut contenir des données de santé)",
    "other data": "autres données",
}


def message_text(incident: BreachIncident, notice: BreachNotice, settings: Settings) -> str:
    """The notice: kinds of data exposed (never their values), what was done, what to do, how to check it."""
    exposed_fr = ", ".join(CATEGORY_FR.get(c, c) for c in notice.categories) or "certaines de vos données"
    exposed_en = ", ".join(notice.categories) or "some of your data"
    portal = settings.enrolment_portal_url.rstrip("/")
    return (
        "Bonjour,\n\n"
        f"Vos données figurent dans un fichier divulgué sans autorisation (incident « {incident.name} »).\n"
        f"Catégories de données exposées : {exposed_fr}. Ce message ne reproduit aucune de ces données.\n\n"
        "Ce que nous avons fait : pendant "
        f"{settings.breach_flag_days} jours, tout changement de coordonnées bancaires, d'adresse ou de contact "
        "sur votre compte demandera une vérification d'identité renforcée.\n"
        "Ce que vous pouvez faire : méfiez-vous des appels, SMS et e-mails se réclamant de l'Assurance maladie ; "
        "vérifiez vos remboursements sur votre espace personnel.\n\n"
        "Comment vérifier que ce message vient bien de nous :\n"
        "- il ne contient aucun lien et ne vous demande rien ;\n"
        f"- le même avis figure dans votre espace personnel : tapez vous-même l'adresse {portal} dans votre "
        "navigateur, connectez-vous, puis ouvrez la page « Violations de données » ;\n"
        "- nous ne vous demanderons jamais, ni par e-mail, ni par SMS, ni par téléphone, votre mot de passe, un "
        "code reçu, vos coordonnées bancaires ou votre numéro de sécurité sociale. Un message qui le fait n'est "
        "pas de nous : ne répondez pas et signalez-le.\n\n"
        "— Le délégué à la protection des données\n\n"
        "----\n\n"
        "Hello,\n\n"
        f"Your data is in a file disclosed without authorisation (incident “{incident.name}”).\n"
        f"Kinds of data exposed: {exposed_en}. This message repeats none of that data.\n"
        f"For {settings.breach_flag_days} days, changes of bank details, address or contact details on your "
        "account need a stronger identity check.\n"
        "To check this message is genuine: it holds no link and asks for nothing; the same notice is in your "
        f"personal space (type {portal} yourself, sign in, open “Violations de données”); we never ask for a "
        "password, a code, bank details or your social security number by e-mail, text or phone.\n\n"
        "— The data protection officer\n"
    )


BAD_ADDRESS = "the e-mail address on file is not one valid address: the postal letter is the notice"
_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)


def single_address(value: str) -> str | None:
    """``value`` if it is exactly one plain e-mail address (no display name, no list, no line break, ASCII, at most
    254 characters), else None: a vault field is data from a producer or a leak's era, not a header to trust."""
    value = value.strip()
    if len(value) > 254 or not _ADDRESS.fullmatch(value):
        return None
    name, parsed = email.utils.parseaddr(value)
    return value if not name and parsed == value else None


def recipient(hub: Hub, session: Session, person_index: bytes) -> str | None:
    """Where a person's breach notice is e-mailed: the address they chose through the step-up-protected contact
    change (:func:`hygie.governance.letters.contact_of`) if they chose one, else the e-mail of their newest vault
    record delivered before the first breach naming them was imported (as letters go to the pre-breach address:
    :func:`hygie.governance.letters.postal_identity`), never a newer record that whoever held the leak could have
    planted. None: no e-mail, a postal letter is due."""
    from hygie.governance.letters import contact_of, postal_identity

    chosen = contact_of(session, hub.custody, person_index)
    if chosen is not None and chosen.get("email"):
        return chosen["email"]
    identity = postal_identity(hub, session, person_index)
    return identity.email if identity is not None and identity.email else None


@dataclass
class _Due:
    outbox_id: int
    to: str | None
    body: str | None
    status: str = "pending"
    error: str | None = None


def send_pending(hub: Hub, session: Session, actor: str) -> dict[str, int]:
    """Send every pending message; returns counts by outcome. Recorded as ``breach.send``."""
    pending = list(session.scalars(select(BreachOutbox).where(BreachOutbox.status.in_(("pending", "failed")),
                                                              BreachOutbox.attempts < MAX_ATTEMPTS)))  # fmt: skip
    counts = {"sent": 0, "letter": 0, "failed": 0}
    if not pending:
        record(session, actor=actor, action="breach.send", detail=counts)
        return counts
    settings = hub.settings
    # 1. Read everything needed (no write yet: the transaction holds no lock while the server is talked to).
    notices = {n.id: n for n in session.scalars(select(BreachNotice).where(
        BreachNotice.id.in_([m.notice_id for m in pending])))}  # fmt: skip
    incidents = {i.id: i for i in session.scalars(select(BreachIncident).where(
        BreachIncident.id.in_({n.incident_id for n in notices.values()})))}  # fmt: skip
    due: list[_Due] = []
    for item in pending:
        notice = notices[item.notice_id]
        to = recipient(hub, session, bytes(notice.person_index))
        if to is None:
            due.append(_Due(item.id, None, None, status="letter"))
        elif single_address(to) is None:  # never handed to the mail library: one bad value stops no other notice
            due.append(_Due(item.id, None, None, status="failed", error=BAD_ADDRESS))
        else:
            body = message_text(incidents[notice.incident_id], notice, settings)
            due.append(_Due(item.id, single_address(to), body))
    session.commit()  # ends the read transaction (nothing written): no snapshot or lock kept while sending
    # 2. Send, outside any transaction.
    server = mail.server(settings, host=settings.breach_smtp_host, port=settings.breach_smtp_port,
                         sender=settings.breach_smtp_from)  # fmt: skip
    to_send = [d for d in due if d.status == "pending"]
    while to_send:
        try:
            with mail.connect(server) as sender:
                while to_send:
                    message = to_send[0]
                    assert message.to is not None and message.body is not None
                    try:
                        sender.send(to=message.to, subject=SUBJECT, body=message.body)
                    except mail.MailFailure as exc:
                        # The error names the server and the failure kind; never the recipient.
                        message.status, message.error = "failed", str(exc)
                        to_send.pop(0)
                        break  # a new session for the next one
                    except ValueError:  # the mail library refused the message (e.g. a header): this one fails
                        message.status, message.error = "failed", BAD_ADDRESS
                        to_send.pop(0)
                        continue
                    message.status = "sent"
                    to_send.pop(0)
        except mail.MailFailure as exc:  # no session at all: every message left fails alike
            for message in to_send:
                message.status, message.error = "failed", str(exc)
            to_send = []
    for message in due:
        message.to = message.body = None
    # 3. Write the outcomes and the record.
    now = datetime.now(UTC)
    items = {o.id: o for o in session.scalars(select(BreachOutbox).where(
        BreachOutbox.id.in_([d.outbox_id for d in due])))}  # fmt: skip
    for message in due:
        item = items[message.outbox_id]
        item.attempts += 1
        item.status = message.status
        counts[message.status] += 1
        if message.status == "sent":
            item.sent_at, item.last_error = now, None
        elif message.status == "failed":
            item.last_error = message.error
    record(session, actor=actor, action="breach.send", detail=counts)
    return counts
