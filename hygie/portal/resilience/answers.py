# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""What a refused or failed request is told: plainly that the service is busy or unavailable, that the data is safe,
and when to try again. A French page for browsers; JSON (``detail``, ``retry_after``) for API clients.

Never a default value: the portal answers completely or says it cannot answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from html import escape


class Refusal(StrEnum):
    BUSY = "busy"
    """Shed at the door: nothing of the request ran."""
    UNAVAILABLE = "unavailable"
    """A dependency is down (breaker open) or failed during the request; its transaction was rolled back."""
    TIMEOUT = "timeout"
    """Admitted but not answered in time; the work may still finish."""
    DRAINING = "draining"
    """The server is stopping; another instance, or this one after restart, will answer."""


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Answer:
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


def _outcome_en(method: str, ran: bool) -> str:
    if method in SAFE_METHODS:
        return "your data is safe and unchanged"
    if ran:
        return "your request may still have been carried out: check its outcome before sending it again"
    return "your data is safe; nothing was changed, send the request again"


def _outcome_fr(method: str, ran: bool) -> str:
    # A change that ran may have committed before the failure (or may still commit after a deadline): say so.
    if method not in SAFE_METHODS and ran:
        return (
            "Nous n'avons pas pu confirmer votre demande : elle a peut-être été prise en compte. "
            "Vérifiez-en le résultat avant de la renvoyer. Vos données sont en sécurité."
        )
    if method in SAFE_METHODS:
        return "Vos données sont en sécurité : rien n'a été perdu ni modifié."
    return "Vos données sont en sécurité : votre demande n'a rien modifié, vous pourrez la renvoyer."


_CAUSE_EN = {
    Refusal.BUSY: "the service is busy",
    Refusal.UNAVAILABLE: "the service is temporarily unavailable (a storage component is not answering)",
    Refusal.TIMEOUT: "the service could not answer in time",
    Refusal.DRAINING: "this server is restarting",
}
_TITLE_FR = {
    Refusal.BUSY: "Le service est très sollicité",
    Refusal.UNAVAILABLE: "Le service est momentanément indisponible",
    Refusal.TIMEOUT: "Le service n'a pas pu répondre à temps",
    Refusal.DRAINING: "Le service redémarre",
}
_CAUSE_FR = {
    Refusal.BUSY: "Trop de personnes utilisent le service en ce moment : nous ne pouvons pas traiter votre demande.",
    Refusal.UNAVAILABLE: "Un composant de stockage ne répond pas : nous préférons ne rien afficher plutôt "
    "qu'une information incomplète ou fausse.",
    Refusal.TIMEOUT: "Votre demande a pris trop de temps : nous préférons ne rien afficher plutôt qu'une "
    "information incomplète.",
    Refusal.DRAINING: "Ce serveur s'arrête pour une maintenance : il ne prend plus de nouvelles demandes.",
}


def _when_fr(seconds: int) -> str:
    if seconds < 60:
        return f"dans {seconds} seconde{'s' if seconds > 1 else ''}"
    minutes = -(-seconds // 60)
    return f"dans {minutes} minute{'s' if minutes > 1 else ''}"


def page(kind: Refusal, method: str, retry_after: int, ran: bool) -> str:
    title = _TITLE_FR[kind]
    return f"""<!doctype html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} — Hygie</title>
<style>
body {{ font-family: Marianne, Arial, sans-serif; margin: 0; color: #161616; background: #fff; line-height: 1.5; }}
main {{ max-width: 40rem; margin: 3rem auto; padding: 0 1rem; }}
h1 {{ font-size: 1.75rem; }}
.notice {{ border-left: 4px solid #000091; padding: .5rem 1rem; background: #f5f5fe; }}
</style>
</head>
<body>
<main role="main">
<h1>{escape(title)}</h1>
<p>{escape(_CAUSE_FR[kind])}</p>
<p class="notice"><strong>{escape(_outcome_fr(method, ran))}</strong></p>
<p>Réessayez <strong>{escape(_when_fr(retry_after))}</strong>.</p>
<p>Hygie n'affiche jamais une liste vide ou un montant nul à la place d'une information qu'il ne peut pas lire.</p>
</main>
</body>
</html>
"""


def wants_html(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"accept":
            return b"text/html" in value
    return False


def refusal(kind: Refusal, *, method: str, retry_after: int, html: bool, ran: bool = False, what: str = "") -> Answer:
    """The 503 for a refused or failed request. ``ran``: the request's code started (a change may have happened);
    ``what`` names the class or dependency (no data, no identifier).

    Made once per kind of answer and kept (a few dozen at most: the method counts only as safe or not, and ``what``
    is one of the classes' or dependencies' names): under overload most answers are these, and writing the page or
    the JSON again for each was a share of what refusing cost."""
    return _refusal(kind, method in SAFE_METHODS, retry_after, html, ran, str(what))


@lru_cache(maxsize=256)
def _refusal(kind: Refusal, safe: bool, retry_after: int, html: bool, ran: bool, what: str) -> Answer:
    method = "GET" if safe else "POST"  # all that the words depend on
    headers = [(b"retry-after", str(retry_after).encode()), (b"cache-control", b"no-store")]
    if html:
        body = page(kind, method, retry_after, ran).encode()
        headers.append((b"content-type", b"text/html; charset=utf-8"))
    else:
        cause = _CAUSE_EN[kind] + (f" ({what})" if what else "")
        detail = f"{cause}; {_outcome_en(method, ran)}; retry after {retry_after} s"
        body = json.dumps({"detail": detail, "retry_after": retry_after}).encode()
        headers.append((b"content-type", b"application/json"))
    headers.append((b"content-length", str(len(body)).encode()))
    return Answer(503, tuple(headers), body)
