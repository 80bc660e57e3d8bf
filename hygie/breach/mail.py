"""The outbox: breach notices sent by e-mail through a configurable SMTP server.

The address is read from the person's vault record at send time and lives only in memory while the message
is handed to the server; the outbox keeps the status, never the address. People without an e-mail address
are marked 'letter': a postal letter is due, printed from the vault by the mail room.
"""

from __future__ import annotations

import smtplib
from datetime import UTC, datetime
from email.message import EmailMessage

from sqlalchemy import select
from sqlalchemy.orm import Session

from hygie.audit import record
from hygie.breach.models import BreachIncident, BreachNotice, BreachOutbox
from hygie.config import Settings
from hygie.hub import Hub

MAX_ATTEMPTS = 5


def message_text(incident: BreachIncident, notice: BreachNotice, settings: Settings) -> str:
    exposed = ", ".join(notice.categories) or "some of your data"
    return (
        "Bonjour,\n\n"
        f"Vos données figurent dans un fichier divulgué sans autorisation (incident « {incident.name} »).\n"
        f"Données exposées : {exposed}.\n\n"
        "Ce que nous avons fait : pendant "
        f"{settings.breach_flag_days} jours, tout changement de coordonnées bancaires, d'adresse ou de contact "
        "sur votre compte demandera une vérification d'identité renforcée.\n"
        "Ce que vous pouvez faire : méfiez-vous des appels, SMS et e-mails se réclamant de l'Assurance maladie ; "
        "ne communiquez jamais vos codes ; vérifiez vos remboursements sur votre espace personnel.\n"
        "Ce message ne contient aucun lien : connectez-vous à votre espace comme d'habitude pour le détail.\n\n"
        "— Le délégué à la protection des données\n"
    )


def send_pending(hub: Hub, session: Session, actor: str) -> dict[str, int]:
    """Send every pending message; returns counts by outcome. Recorded as ``breach.send``."""
    pending = list(session.scalars(select(BreachOutbox).where(BreachOutbox.status.in_(("pending", "failed")),
                                                              BreachOutbox.attempts < MAX_ATTEMPTS)))  # fmt: skip
    counts = {"sent": 0, "letter": 0, "failed": 0}
    if not pending:
        record(session, actor=actor, action="breach.send", detail=counts)
        return counts
    notices = {n.id: n for n in session.scalars(select(BreachNotice).where(
        BreachNotice.id.in_([m.notice_id for m in pending])))}  # fmt: skip
    vault = hub.vault(session)
    identities = vault.identities_of([n.person_index for n in notices.values()])
    settings = hub.settings
    smtp: smtplib.SMTP | None = None
    try:
        for item in pending:
            notice = notices[item.notice_id]
            identity = identities.get(notice.person_index)
            item.attempts += 1
            if identity is None or not identity.email:
                item.status = "letter"
                counts["letter"] += 1
                continue
            incident = session.get(BreachIncident, notice.incident_id)
            assert incident is not None
            mail = EmailMessage()
            mail["From"] = settings.breach_smtp_from
            mail["To"] = identity.email
            mail["Subject"] = "Vos données figurent dans une fuite de données / Your data was in a data leak"
            mail.set_content(message_text(incident, notice, settings))
            try:
                if smtp is None:
                    smtp = smtplib.SMTP(settings.breach_smtp_host, settings.breach_smtp_port, timeout=30)
                smtp.send_message(mail)
            except (OSError, smtplib.SMTPException) as exc:
                # The error names the server and the failure kind; never the recipient.
                item.status = "failed"
                item.last_error = f"{type(exc).__name__} from {settings.breach_smtp_host}:{settings.breach_smtp_port}"
                counts["failed"] += 1
                smtp = None
                continue
            item.status = "sent"
            item.sent_at = datetime.now(UTC)
            item.last_error = None
            counts["sent"] += 1
    finally:
        if smtp is not None:
            smtp.quit()
    record(session, actor=actor, action="breach.send", detail=counts)
    return counts
