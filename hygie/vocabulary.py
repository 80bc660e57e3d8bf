# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The closed vocabularies a message may name (the states of things, the roles of people), each word written out
once with its context so that extraction puts it in the catalogues.

A refusal names a state by its stored value: ``N_("project {project} is {status}, not active", project=3,
status=word(PROJECT_STATUS, "suspended"))`` reads "project 3 is suspended, not active" in English and, through the
catalogue, "le projet n° 3 est suspendu, pas actif" in French.
"""

from __future__ import annotations

from hygie.i18n import Message, term

PROJECT_STATUS = "project status"
JOB_STATUS = "analysis status"
RELEASE_STATUS = "release status"
ALERT_STATUS = "alert status"
INCIDENT_STATUS = "breach incident status"
ROLE = "role"
ALERT_ACTION = "alert action"
BREACH_MATCH_REASON = "breach match reason"
LIFT_STATUS = "lift request status"

WORDS: tuple[Message, ...] = (
    term("lift request status", "requested"),
    term("lift request status", "approved"),
    term("lift request status", "refused"),
    term("lift request status", "shown"),
    term("project status", "draft"),
    term("project status", "submitted"),
    term("project status", "active"),
    term("project status", "rejected"),
    term("project status", "suspended"),
    term("project status", "expired"),
    term("project status", "closed"),
    term("analysis status", "queued"),
    term("analysis status", "running"),
    term("analysis status", "succeeded"),
    term("analysis status", "failed"),
    term("analysis status", "refused"),
    term("release status", "released"),
    term("release status", "pending"),
    term("release status", "rejected"),
    term("release status", "refused"),
    term("alert status", "open"),
    term("alert status", "acknowledged"),
    term("alert status", "dismissed"),
    term("alert action", "acknowledged"),
    term("alert action", "dismissed"),
    term("breach incident status", "staged"),
    term("breach incident status", "imported"),
    term("breach incident status", "notified"),
    term("breach incident status", "destroyed"),
    term("breach match reason", "NIR"),
    term("breach match reason", "NIR and name"),
    term("breach match reason", "NIR and birth date, name close"),
    term("breach match reason", "name and birth date"),
    term("breach match reason", "NIR and birth date disagree"),
    term("breach match reason", "NIR and name agree, birth date does not"),
    term("breach match reason", "NIR of a person whose name differs"),
    term("breach match reason", "NIR not in the vault, name and birth date match someone"),
    term("breach match reason", "several people fit"),
    term("breach match reason", "name close but not certain"),
    term("breach match reason", "valid NIR not in the vault"),
    term("breach match reason", "nobody with this name and birth date"),
    term("breach match reason", "no valid NIR, and no name with a birth date"),
    term("breach match reason", "no usable identifier"),
    term("role", "citizen"),
    term("role", "researcher"),
    term("role", "reviewer"),
    term("role", "dpo"),
    term("role", "operator"),
    term("role", "auditor"),
    term("role", "visitor"),
)
"""Every word; tests/test_i18n.py checks each stored value of these vocabularies is here."""

_KNOWN = {(w.context, w.msgid) for w in WORDS}


def word(vocabulary: str, value: str) -> Message | str:
    """``value`` as a translatable word of ``vocabulary``; an unknown value stays a plain string (shown as it is)."""
    return Message(value, vocabulary) if (vocabulary, value) in _KNOWN else value


def labels(vocabulary: str, locale: str) -> dict[str, str]:
    """{stored value: its word in ``locale``} for one vocabulary (the pages' status labels)."""
    from hygie.i18n import translate

    return {w.msgid: translate(w, locale) or w.msgid for w in WORDS if w.context == vocabulary}
