# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""French for the services' refusals, as the pages show them.

The services speak English (their messages are the API's, for programs and operators); a page shows a French
sentence under a French title. Known messages are matched by pattern, their numbers and states carried over; any
other message is shown as it is, marked ``lang="en"`` so a screen reader switches voice (RGAA 8.7), never
dropped: an honest English sentence beats a vague French one.
"""

from __future__ import annotations

import re
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


RULES: list[tuple[str, str]] = [
    (r"no project (\d+)", "Aucun projet n° {1}."),
    (r"no analysis (\d+) in project (\d+)", "Aucune analyse n° {1} dans le projet n° {2}."),
    (r"no release (\d+)", "Aucune sortie n° {1}."),
    (r"no alert (\d+)", "Aucune alerte n° {1}."),
    (
        r"analysis (\d+) has no output: only released outputs can be read or downloaded",
        "L'analyse n° {1} n'a pas de sortie : seules les sorties publiées se lisent et se téléchargent.",
    ),
    (
        r"analysis (\d+) is (\w+): only released outputs can be read or downloaded",
        "La sortie de l'analyse n° {1} est {release2} : seules les sorties publiées se lisent et se téléchargent.",
    ),
    (
        r"project (\d+) has no ready view yet: .*",
        "Le projet n° {1} n'a pas encore de vue prête : elle est construite à son activation.",
    ),
    (
        r"project (\d+) is (\w+): its data is not reachable",
        "Le projet n° {1} est {project2} : ses données ne sont pas accessibles.",
    ),
    (r"project (\d+) is (\w+), not active", "Le projet n° {1} est {project2}, pas actif."),
    (r"project (\d+) is (\w+), not a draft", "Le projet n° {1} est {project2} : ce n'est plus un brouillon."),
    (r"project (\d+) is (\w+), not awaiting review", "Le projet n° {1} est {project2} : il n'attend pas de relecture."),
    (r"project (\d+) is already (\w+)", "Le projet n° {1} est déjà {project2}."),
    (r"project (\d+) has expired", "Le projet n° {1} a expiré."),
    (
        r"project (\d+)'s annual review is overdue: .*",
        "La revue annuelle du projet n° {1} est en retard : l'accès reprend quand un relecteur l'a enregistrée.",
    ),
    (r"you are not a member of project (\d+)", "Vous n'êtes pas membre du projet n° {1}."),
    (
        r"you requested or belong to project (\d+): someone else must review it",
        "Vous avez demandé le projet n° {1} ou en êtes membre : une autre personne doit le relire.",
    ),
    (
        r"you wrote analysis (\d+) or belong to project (\d+): someone else must check it",
        "Vous avez écrit l'analyse n° {1} ou êtes membre du projet n° {2} : une autre personne doit la vérifier.",
    ),
    (
        r"you already decided on release (\d+): .*",
        "Vous avez déjà décidé de la sortie n° {1} : deux vérificateurs distincts sont requis.",
    ),
    (
        r"release (\d+) is (\w+), not awaiting checkers",
        "La sortie n° {1} est {release2} : elle n'attend plus de vérificateur.",
    ),
    (r"alert (\d+) is (\w+); it cannot be (\w+)", "L'alerte n° {1} est {alert2} : elle ne peut pas être {alert3}."),
    (r"a decision needs its reason, in at least (\d+) characters", "Motivez la décision en {1} caractères au moins."),
    (r"the SQL is empty: .*", "La requête SQL est vide : écrivez une instruction SELECT."),
    (
        r"a (\w+) cannot check outputs; reviewers do .*",
        "Un compte {role1} ne vérifie pas les sorties : les relecteurs le font (le DPO veille, et ne vérifie les "
        "sorties que si le réglage dpo_may_review le prévoit).",
    ),
    (
        r"a (\w+) cannot review projects; reviewers and the DPO do",
        "Un compte {role1} ne relit pas les projets : les relecteurs et le DPO le font.",
    ),
    (
        r"a (\w+) never reaches project data; only a project's researchers do",
        "Un compte {role1} n'accède jamais aux données d'un projet : seuls ses chercheurs y accèdent.",
    ),
    (r"a (\w+) may not .*", "Un compte {role1} n'a pas le droit de faire cette action."),
    (
        r"dummy data is for a project's researchers, not for a (\w+)",
        "Les données fictives d'un projet sont réservées à ses chercheurs.",
    ),
    (r"this needs the ([\w ]+) scope", "Cette action demande la portée « {1} »."),
    (r"the session has expired or was closed; sign in again", "Session expirée ou close : reconnectez-vous."),
    (
        r"only a citizen signed in to their own account has breach notices",
        "Seul un assuré connecté à son propre compte reçoit des avis de violation de données.",
    ),
    (r"this account is not (?:linked|tied) to an insured person", "Ce compte n'est lié à aucun assuré."),
    (
        r"this account is disabled(?:; contact your organisation's administrator)?",
        "Ce compte est désactivé : adressez-vous à l'administrateur de votre organisme.",
    ),
    (
        r"this account is locked after (\d+) failed sign-ins; try again after (\d\d:\d\d) UTC",
        "Ce compte est bloqué après {1} échecs de connexion : réessayez après {2} UTC.",
    ),
    (r"no breach incident (\d+)", "Aucune violation de données n° {1}."),
    (
        r"row (\d+) of incident (\d+) is not in the review queue",
        "La ligne {1} de la violation n° {2} n'est pas dans la file de revue.",
    ),
    (r"row (\d+) has no candidate to confirm", "La ligne {1} n'a aucun candidat à confirmer."),
    (
        r"incident (\d+) is (\w+): its mapping can no longer change",
        "La violation n° {1} est {incident2} : la correspondance des colonnes ne peut plus changer.",
    ),
    (
        r"incident (\d+) is (\w+): notices were already made",
        "La violation n° {1} est {incident2} : les avis ont déjà été faits.",
    ),
    (
        r"incident (\d+)'s file was destroyed on schedule: it cannot be matched again",
        "Le fichier de la violation n° {1} a été détruit à son échéance : il ne peut plus être rapproché.",
    ),
    (
        r"an incident named .* exists already: choose another name",
        "Une violation porte déjà ce nom : choisissez-en un autre.",
    ),
    (r"an incident needs a name of 1 to 200 characters", "Le nom de la violation compte de 1 à 200 caractères."),
    (
        r"the file has no column (\d+) \(columns are numbered from 0\)",
        "Le fichier n'a pas de colonne {1} (les colonnes sont numérotées à partir de 0).",
    ),
    (r"the file holds no rows", "Le fichier ne contient aucune ligne."),
    (
        r"the file could not be read as (\w+) \((\w+)\)",
        "Le fichier n'a pas pu être lu comme un fichier {1} : est-ce bien un CSV, TSV, XLSX ou JSON ?",
    ),
    (
        r"a JSON leak needs a list of records.*",
        "Un fichier JSON doit contenir une liste d'enregistrements (ou un objet qui en contient une).",
    ),
    (
        r"the file is larger than (\d+) MiB: .*",
        "Le fichier dépasse {1} Mio : importez-le en ligne de commande (hygie breach import).",
    ),
    (
        r"incident (\d+) waits for a second person to confirm its import: nothing is matched yet",
        "La violation n° {1} attend qu'une seconde personne confirme son import : rien n'est encore rapproché.",
    ),
    (
        r"incident (\d+) is (\w+): there is no import to confirm",
        "La violation n° {1} est {incident2} : il n'y a pas d'import à confirmer.",
    ),
    (
        r"(?:confirming a leak's import|approving a request to see an identity) needs a second person's account "
        r"\(.*\)",
        "Cet acte revient à une seconde personne, d'un rôle habilité à le faire.",
    ),
    (
        r"(?:confirming a leak's import|approving a request to see an identity) needs a second person: .*",
        "Cet acte revient à une seconde personne : ni celle qui l'a demandé, ni un compte qu'elle a créé ou qui "
        "l'a créée, ni un compte créé par la même personne.",
    ),
    (
        r"row (\d+) of incident (\d+) has no candidate in the vault",
        "La ligne {1} de la violation n° {2} n'a aucun candidat dans le coffre des identités.",
    ),
    (
        r"your request (\d+) for row (\d+) is still open: wait for its decision",
        "Votre demande n° {1} pour la ligne {2} est toujours ouverte : attendez sa décision.",
    ),
    (r"no identity reveal request (\d+)", "Aucune demande de voir une identité n° {1}."),
    (r"request (\d+) is (\w+): it was decided already", "La demande n° {1} est déjà décidée."),
    (r"only the person who asked may see this identity", "Seule la personne qui l'a demandée voit cette identité."),
    (
        r"this request has not been approved by a second person yet",
        "Cette demande n'est pas encore approuvée par une seconde personne.",
    ),
    (r"this request was refused", "Cette demande a été refusée."),
    (
        r"this identity was shown once already: .*",
        "Cette identité a déjà été montrée une fois : faites une nouvelle demande, motivée, si la loi l'exige.",
    ),
    (
        r"the approval is older than (\d+) minutes: ask again",
        "L'approbation date de plus de {1} minutes : faites une nouvelle demande.",
    ),
    (r"with totals, at most (\d+) dimensions", "Avec les totaux, {1} dimensions au plus."),
    (r"List should have at most (\d+) items? after validation, not \d+", "{1} au plus."),
    (r"refused: (.+) is forbidden by law", "Refusé : cette finalité ({1}) est interdite par la loi."),
]
"""(the service's message as a regular expression, its French): ``{n}`` is the n-th group; ``{projectn}``,
``{releasen}``, ``{alertn}``, ``{incidentn}`` the group as the French word for that object's state, ``{rolen}`` as
a role."""
STATES = {
    "project": PROJECT_STATUS,
    "release": RELEASE_STATUS,
    "alert": ALERT_STATUS,
    "incident": INCIDENT_STATUS,
    "role": ROLE_NAMES,
}
PLACEHOLDER = re.compile(r"\{(\w+)\}")
COMPILED = [(re.compile(pattern + r"\.?$"), french) for pattern, french in RULES]


def _render(template: str, match: re.Match[str]) -> str:
    values: dict[str, str] = {}
    for i, group in enumerate(match.groups(), start=1):
        values[str(i)] = group
        for kind, words in STATES.items():
            values[f"{kind}{i}"] = words.get(group, group)
    return PLACEHOLDER.sub(lambda p: values[p[1]], template)


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
    for pattern, template in COMPILED:
        match = pattern.match(text)
        if match:
            return Said(_render(template, match), "fr", text)
    if status in BY_STATUS:
        return Said(BY_STATUS[status], "fr", text)
    return Said(text, "en")
