# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Free text people type into the platform (justifications, reasons, notes) must not carry identifiers.

Staff write reasons for decisions, summaries for the public register, grounds for a delayed disclosure. Those
texts are stored in the metadata database and some reach the audit record or the public register, so a NIR, an
e-mail address or a phone number typed into one would be an identifier in clear outside the vault. This check
refuses such text with a message saying what to remove; it cannot catch a name, which is why the forms say
never to write one.
"""

from __future__ import annotations

import re

from hygie.governance.errors import Invalid
from hygie.i18n import N_
from hygie.identity.nir import is_valid_nir

_NIR = re.compile(
    r"(?<![0-9A-Za-z])[12378][ .]?\d{2}[ .]?\d{2}[ .]?(?:\d{2}|2[AB])[ .]?\d{3}[ .]?\d{3}(?:[ .]?\d{2})?(?![0-9])"
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<!\d)(?:\+33[ .]?|0)[1-9](?:[ .-]?\d{2}){4}(?!\d)")


def identifier_kinds(text: str) -> list[str]:
    """Which kinds of identifier the text seems to hold (empty when none)."""
    found: list[str] = []
    for match in _NIR.finditer(text):
        digits = re.sub(r"[ .]", "", match.group(0)).upper()
        if len(digits) == 13 and digits.startswith("3400"):
            continue  # a CIP13 drug code (they all start 3400), which researchers do cite
        # 13 digits alone is a NIR without its key: as identifying as the full number.
        if len(digits) == 13 or is_valid_nir(digits):
            found.append(N_("a social security number (NIR)"))
            break
    if _EMAIL.search(text):
        found.append(N_("an e-mail address"))
    if _PHONE.search(text):
        found.append(N_("a phone number"))
    return found


def check_free_text(field: str, text: str) -> str:
    """``text``, if it holds no identifier; otherwise :class:`Invalid` naming the field and what to remove
    (never quoting it)."""
    kinds = identifier_kinds(text)
    if len(kinds) == 1:
        raise Invalid(
            N_(
                "{field} seems to contain {kind}: remove it. Free text is stored outside the identity vault and "
                "must never name or identify a person",
                field=field,
                kind=kinds[0],
            )
        )
    if len(kinds) == 2:
        raise Invalid(
            N_(
                "{field} seems to contain {kind} and {other}: remove it. Free text is stored outside the "
                "identity vault and must never name or identify a person",
                field=field,
                kind=kinds[0],
                other=kinds[1],
            )
        )
    if kinds:
        raise Invalid(
            N_(
                "{field} seems to contain {kind} and {other} and {third}: remove it. Free text is stored outside "
                "the identity vault and must never name or identify a person",
                field=field,
                kind=kinds[0],
                other=kinds[1],
                third=kinds[2],
            )
        )
    return text
