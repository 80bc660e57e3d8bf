# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""French for the services' refusals, as the pages show them.

The services speak English (their messages are the API's, for programs and operators); a page shows a French
sentence under a French title. A refusal is a :class:`hygie.i18n.Message` carrying its msgid and parameters, said
in French from the gettext catalogue (``hygie/locale``), its numbers and states carried over; nothing is guessed
from the English words. Any other message is shown under the status's French sentence, or as it is, marked
``lang="en"`` so a screen reader switches voice (RGAA 8.7), never dropped: an honest English sentence beats a
vague French one.
"""

from __future__ import annotations

from dataclasses import dataclass

from hygie import vocabulary
from hygie.i18n import translate
from hygie.vocabulary import labels

PROJECT_STATUS: dict[str, str] = labels(vocabulary.PROJECT_STATUS, "fr")
JOB_STATUS: dict[str, str] = labels(vocabulary.JOB_STATUS, "fr")
RELEASE_STATUS: dict[str, str] = labels(vocabulary.RELEASE_STATUS, "fr")
ALERT_STATUS: dict[str, str] = labels(vocabulary.ALERT_STATUS, "fr")
INCIDENT_STATUS: dict[str, str] = labels(vocabulary.INCIDENT_STATUS, "fr")
ROLE_NAMES: dict[str, str] = labels(vocabulary.ROLE, "fr")
"""The states and roles in French, from the catalogue (``hygie.vocabulary``)."""


class French(str):
    """A sentence a page wrote in French itself (a form's own check): shown as it is."""


@dataclass(frozen=True)
class Said:
    """A message as a page shows it: the text, its language, and the service's own words when translated."""

    text: str
    lang: str
    original: str | None = None


BY_STATUS: dict[int, str] = {
    401: "Connectez-vous pour continuer.",
    403: "Votre compte n'a pas le droit de faire cette action.",
    404: "Ce que vous cherchez n'existe pas, ou plus.",
    409: "Cette action n'est pas possible dans l'état actuel.",
    422: "La demande est invalide.",
}
"""What a refusal means when its message is not a known one: said in French, the service's words kept below."""


def french(status: int, message: str) -> str:
    """The French for a known message; otherwise the message itself (a form error reads better whole)."""
    found = said(status, message)
    return found.text if found.original is None or found.text != BY_STATUS.get(status) else found.original


def said(status: int, message: str) -> Said:
    """The French for a service's message: a catalogued one (``hygie.i18n``) from the catalogue, any other under
    the status's sentence with the service's own words kept below it."""
    translated = translate(message, "fr")
    if translated is not None:
        return Said(translated, "fr", str(message))
    if isinstance(message, French):
        return Said(str(message), "fr")
    text = message.strip()
    if status in BY_STATUS:
        return Said(BY_STATUS[status], "fr", text)
    return Said(text, "en")
