# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""French for the services' refusals: catalogued messages translated with their numbers and states, others kept."""

from __future__ import annotations

import inspect

import pytest

from hygie.breach import citizen as breach_citizen
from hygie.breach.mapping import CATEGORY
from hygie.i18n import N_, Message
from hygie.portal.pages import messages, violations
from hygie.portal.pages.citizen import EXPOSED, WHAT_TO_DO_FR
from hygie.portal.pages.messages import BY_STATUS, French, french, said
from hygie.vocabulary import (
    ALERT_ACTION,
    ALERT_STATUS,
    INCIDENT_STATUS,
    PROJECT_STATUS,
    RELEASE_STATUS,
    ROLE,
    word,
)


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (404, N_("no project {project}", project=12), "Aucun projet n° 12."),
        (403, N_("you are not a member of project {project}", project=7), "Vous n'êtes pas membre du projet n° 7."),
        (409, N_("release {release} is {status}, not awaiting checkers", release=3,
                 status=word(RELEASE_STATUS, "rejected")),
         "La sortie n° 3 est rejetée par un vérificateur : elle n'attend plus de vérificateur."),
        (409, N_("project {project} is {status}, not active", project=4, status=word(PROJECT_STATUS, "submitted")),
         "Le projet n° 4 est en relecture, pas actif."),
        (409, N_("alert {alert} is {status}; it cannot be {action}", alert=5, status=word(ALERT_STATUS, "open"),
                 action=word(ALERT_ACTION, "dismissed")), None),
        (403, N_("a {role} cannot check outputs; reviewers do (the DPO oversees, and checks outputs only if the "
                 "policy setting dpo_may_review says so)", role=word(ROLE, "dpo")), None),
        (403, N_("this needs the audit scope"), "Cette action demande la portée « audit »."),
        (409, N_("incident {incident} is {status}: notices were already made", incident=2,
                 status=word(INCIDENT_STATUS, "notified")), None),
        (404, N_("row {row} of incident {incident} is not in the review queue", row=7, incident=2), None),
    ],
)  # fmt: skip
def test_catalogued_refusals_are_french_with_their_numbers_and_states(
    status: int, message: Message, expected: str | None
) -> None:
    out = said(status, message)
    assert (out.lang, out.original) == ("fr", str(message))
    assert out.text != str(message) and out.text != BY_STATUS[status]
    if expected is not None:
        assert out.text == expected
    # The numbers are carried over, and no English state or role is left inside the French.
    for value in message.params.values():
        if isinstance(value, int):
            assert f"n° {value}" in out.text or f" {value} " in out.text
        elif isinstance(value, Message):
            assert str(value.translated("fr")) in out.text


def test_the_same_english_words_without_their_identifier_are_not_guessed() -> None:
    # A plain string that reads like a catalogued message is not translated from its words: the page says the
    # status's sentence and keeps the service's words (no regular expression translates English any more).
    english = "no project 12"
    assert said(404, english) == type(said(404, english))(BY_STATUS[404], "fr", english)
    assert not hasattr(messages, "RULES")
    assert "re.compile" not in inspect.getsource(messages) + inspect.getsource(violations)


def test_an_unknown_refusal_says_its_status_in_french_and_keeps_the_service_words() -> None:
    out = said(409, "job 2 is parked: try again later")
    assert out == type(out)(BY_STATUS[409], "fr", "job 2 is parked: try again later")
    assert said(500, "boom").lang == "en"  # no French sentence for it: the English is shown, marked English
    # A form error unknown to the catalogue reads better whole than as a vague French sentence.
    assert french(422, "each measure appears once") == "each measure appears once"
    assert said(403, French("cette page est réservée aux comptes : chercheur")).original is None


def test_breach_texts_come_from_the_catalogue() -> None:
    assert len(WHAT_TO_DO_FR) == len(breach_citizen.WHAT_TO_DO)
    assert all(fr != str(en) for fr, en in zip(WHAT_TO_DO_FR, breach_citizen.WHAT_TO_DO, strict=True))
    assert set(CATEGORY.values()) <= set(EXPOSED)
    dated = N_("leaked file kept encrypted only, destroyed on {year:04d}-{month:02d}-{day:02d}", year=2027, month=3,
               day=9)  # fmt: skip
    assert str(dated).endswith("2027-03-09")
    assert violations.report_text(dated) == messages.Said(
        "fichier divulgué gardé chiffré seulement, détruit le 09/03/2027", "fr", str(dated)
    )
    assert violations.report_text("a sentence the DPO's page does not know").lang == "en"
    assert violations.REASONS["several people fit"] == "plusieurs personnes correspondent"
