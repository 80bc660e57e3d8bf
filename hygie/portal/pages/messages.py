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
from typing import Any

from hygie import vocabulary
from hygie.i18n import N_, Message, translate
from hygie.vocabulary import labels

PROJECT_STATUS: dict[str, str] = labels(vocabulary.PROJECT_STATUS, "fr")
JOB_STATUS: dict[str, str] = labels(vocabulary.JOB_STATUS, "fr")
RELEASE_STATUS: dict[str, str] = labels(vocabulary.RELEASE_STATUS, "fr")
ALERT_STATUS: dict[str, str] = labels(vocabulary.ALERT_STATUS, "fr")
INCIDENT_STATUS: dict[str, str] = labels(vocabulary.INCIDENT_STATUS, "fr")
ROLE_NAMES: dict[str, str] = labels(vocabulary.ROLE, "fr")
"""The states and roles in French, from the catalogue (``hygie.vocabulary``)."""


def fr(message: Message) -> str:
    """A page's own text (a label, a hint, a form's check) in French, from the catalogue: pages are French first,
    and the English msgid is what a page in another language would start from. Should the catalogue lack it
    (``tests/test_i18n.py`` fails first), the English rather than nothing."""
    return translate(message, "fr") or str(message)


class French(str):
    """A sentence a page wrote in French itself (a form's own check): shown as it is."""


@dataclass(frozen=True)
class Said:
    """A message as a page shows it: the text, its language, and the service's own words when translated."""

    text: str
    lang: str
    original: str | None = None


BY_STATUS: dict[int, str] = {
    401: fr(N_("Sign in to continue.")),
    403: fr(N_("Your account may not do this.")),
    404: fr(N_("What you are looking for does not exist, or no longer.")),
    409: fr(N_("This action is not possible in the current state.")),
    422: fr(N_("The request is invalid.")),
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


def validation_error(error: Any) -> str:
    """One of pydantic's validation errors (a form the page hands to an API model) in French: the model's own
    refusal when a validator raised a catalogued message, else the kind of error with its limit from the
    catalogue; never pydantic's English wording, which a form's reader could not act on."""
    context = error.get("ctx") or {}
    raised = context.get("error")
    if isinstance(raised, ValueError) and raised.args and isinstance(raised.args[0], Message):
        return french(422, raised.args[0])
    kind = str(error.get("type", ""))
    limit = next((context[k] for k in ("max_length", "min_length", "ge", "le", "gt", "lt") if k in context), None)
    known: dict[str, Message] = {
        "missing": N_("This field is required."),
        "too_long": N_("at most {count}", count=limit),
        "string_too_long": N_("{count} characters at most.", count=limit),
        "string_too_short": N_("At least {count} characters.", count=limit),
        "too_short": N_("at least {count}", count=limit),
        "greater_than_equal": N_("A number of at least {limit}.", limit=limit),
        "less_than_equal": N_("A number of at most {limit}.", limit=limit),
        "greater_than": N_("A number greater than {limit}.", limit=limit),
        "less_than": N_("A number less than {limit}.", limit=limit),
    }
    if kind in known and (limit is not None or kind == "missing"):
        return fr(known[kind])
    if kind.startswith(("int_", "float_", "decimal_")):
        return fr(N_("A number, in digits."))
    if kind.startswith(("date_", "datetime_")):
        return fr(N_("A date in the form YYYY-MM-DD."))
    return fr(N_("This value is not accepted: check it against the field's hint."))


def status_reason(text: str | None) -> str | None:
    """A project's stored status reason in French: the service's own reasons (``hygie.governance.projects``, kept
    as their English text) by their catalogue templates, the reviewer's words within a rejection kept as written;
    a suspension's or closure's reason is its author's, shown as written."""
    from hygie.governance.projects import BACK_TO_REVIEW

    if not text:
        return text
    if text == BACK_TO_REVIEW:
        return fr(BACK_TO_REVIEW)
    rejected = N_("rejected: {reason}", reason="")
    if text.startswith(str(rejected)):
        return fr(N_("rejected: {reason}", reason=text.removeprefix(str(rejected))))
    return text
