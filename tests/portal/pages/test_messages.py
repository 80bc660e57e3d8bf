# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""French for the services' refusals: known messages translated with their numbers and states, others kept."""

from __future__ import annotations

import pytest

from hygie.breach import citizen as breach_citizen
from hygie.breach.mapping import CATEGORY
from hygie.portal.pages.citizen import EXPOSED, WHAT_TO_DO_FR
from hygie.portal.pages.messages import BY_STATUS, RULES, French, french, said


@pytest.mark.parametrize(
    ("status", "english", "expected"),
    [
        (404, "no project 12", "Aucun projet n° 12."),
        (403, "you are not a member of project 7", "Vous n'êtes pas membre du projet n° 7."),
        (409, "release 3 is rejected, not awaiting checkers",
         "La sortie n° 3 est rejetée par un vérificateur : elle n'attend plus de vérificateur."),
        (409, "analysis 9 is pending: only released outputs can be read or downloaded",
         "La sortie de l'analyse n° 9 est au sas de sortie, en attente de vérificateurs : seules les sorties "
         "publiées se lisent et se téléchargent."),
        (409, "project 4 is submitted, not active", "Le projet n° 4 est en relecture, pas actif."),
        (409, "alert 5 is open; it cannot be dismissed", "L'alerte n° 5 est ouverte : elle ne peut pas être classée."),
        (403, "a dpo cannot check outputs; reviewers do (the DPO oversees, and checks outputs only if the policy "
              "setting dpo_may_review says so)",
         "Un compte DPO ne vérifie pas les sorties : les relecteurs le font (le DPO veille, et ne vérifie les "
         "sorties que si le réglage dpo_may_review le prévoit)."),
        (403, "this needs the audit scope", "Cette action demande la portée « audit »."),
        (401, "this account is locked after 5 failed sign-ins; try again after 14:05 UTC",
         "Ce compte est bloqué après 5 échecs de connexion : réessayez après 14:05 UTC."),
        (409, "incident 2 is notified: notices were already made",
         "La violation n° 2 est notifiée : les avis ont déjà été faits."),
        (409, "incident 3 is notified: its mapping can no longer change",
         "La violation n° 3 est notifiée : la correspondance des colonnes ne peut plus changer."),
        (404, "row 7 of incident 2 is not in the review queue",
         "La ligne 7 de la violation n° 2 n'est pas dans la file de revue."),
        (409, "an incident named 'Fuite' exists already: choose another name",
         "Une violation porte déjà ce nom : choisissez-en un autre."),
    ],
)  # fmt: skip
def test_known_refusals_are_french_with_their_numbers_and_states(status: int, english: str, expected: str) -> None:
    out = said(status, english)
    assert (out.text, out.lang, out.original) == (expected, "fr", english)


def test_an_unknown_refusal_says_its_status_in_french_and_keeps_the_service_words() -> None:
    out = said(409, "job 2 is parked: try again later")
    assert out == type(out)(BY_STATUS[409], "fr", "job 2 is parked: try again later")
    assert said(500, "boom").lang == "en"  # no French sentence for it: the English is shown, marked English
    # A form error unknown to the rules reads better whole than as a vague French sentence.
    assert french(422, "each measure appears once") == "each measure appears once"
    assert said(403, French("cette page est réservée aux comptes : chercheur")).original is None


def test_every_rule_matches_the_whole_message_only() -> None:
    assert said(404, "no project 12 or 13").text == BY_STATUS[404]
    assert all(not pattern.startswith("^") for pattern, _ in RULES)


def test_breach_texts_are_translated_item_for_item() -> None:
    assert len(WHAT_TO_DO_FR) == len(breach_citizen.WHAT_TO_DO)
    assert set(CATEGORY.values()) <= set(EXPOSED)
