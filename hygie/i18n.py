# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Messages that carry their identifier, translated with gettext catalogues (Babel).

The services speak English: a refusal is a :class:`Message`, a ``str`` whose text is its English sentence, so the
API, the CLI and the logs read it as they always did. It also keeps its identifier (the gettext msgid: the English
template, ``"no project {project}"``) and its parameters, so a page can say it in French from the catalogue
``hygie/locale/fr/LC_MESSAGES/hygie.po`` instead of guessing from the English words.

    raise NotFound(N_("no project {project}", project=project_id))

``N_`` marks the template for extraction (``pybabel extract -k N_ -k term:1c,2``; ``tests/test_i18n.py`` extracts
the same way and fails on any message without a French translation, any stale entry, any placeholder lost).
``term("project status", "suspended")`` names a word of a closed vocabulary (a status, a role) with its context,
so that a parameter is translated too: "project {project} is {status}" becomes "le projet n° 3 est suspendu".
"""

from __future__ import annotations

import functools
import io
import math
import string
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from babel.support import Translations

DOMAIN = "hygie"
LOCALE_DIR = Path(__file__).parent / "locale"
LOCALES = ("fr",)
"""The languages of the catalogues; English is the messages' own."""


class Message(str):
    """An English sentence that remembers the msgid and parameters it was made from."""

    msgid: str
    params: dict[str, Any]
    context: str | None

    def __new__(cls, msgid: str, context: str | None = None, /, **params: Any) -> Message:
        text = msgid.format(**params) if params else msgid
        made = super().__new__(cls, text)
        made.msgid = msgid
        made.params = params
        made.context = context
        return made

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled (a job's refusal crossing a process) as what it is, not as a bare string.
        return (_rebuild, (self.msgid, self.context, self.params))

    def translated(self, locale: str) -> str | None:
        """This message in ``locale``, or None when the catalogue has no translation for it."""
        return translate(self, locale)


def _rebuild(msgid: str, context: str | None, params: dict[str, Any]) -> Message:
    return Message(msgid, context, **params)


def N_(msgid: str, /, **params: Any) -> Message:
    """A message to be translated: ``msgid`` is its English template with ``{named}`` placeholders."""
    return Message(msgid, None, **params)


def term(context: str, word: str, /) -> Message:
    """A word of a closed vocabulary (``term("project status", "active")``), translated within its context."""
    return Message(word, context)


def placeholders(template: str) -> set[str]:
    """The ``{named}`` fields of a template (what a translation must keep)."""
    return {field for _, field, _, _ in string.Formatter().parse(template) if field}


@functools.cache
def catalogue(locale: str) -> Translations:
    """The compiled catalogue of ``locale``, read from its ``.po`` once per process (Babel compiles it in memory:
    no binary ``.mo`` to keep in step with its source)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po
    from babel.support import Translations

    with (LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as source:
        parsed = read_po(source, locale=locale, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, parsed)  # fuzzy entries are left out, as msgfmt does
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def translate(message: str, locale: str) -> str | None:
    """A :class:`Message` in ``locale`` with its parameters (themselves translated when they are messages), or None
    when ``message`` is a plain string or its msgid has no translation: the caller then shows the English, marked
    as such, rather than a made-up sentence."""
    if not isinstance(message, Message):
        return None
    if locale not in LOCALES:
        return None
    found = _lookup(message, locale)
    if found is None:
        return None
    params = {}
    for name, value in message.params.items():
        if isinstance(value, Message):
            inner = translate(value, locale)
            if inner is None:
                return None
            params[name] = inner
        else:
            params[name] = value
    try:
        return found.format(**params) if message.params else found
    except (KeyError, IndexError, ValueError):
        return None  # a catalogue entry that lost a placeholder: English rather than a broken sentence


def _lookup(message: Message, locale: str) -> str | None:
    translations = catalogue(locale)
    if message.context is None:
        found = translations.ugettext(message.msgid)
    else:
        found = translations.upgettext(message.context, message.msgid)
    # gettext answers the msgid itself when it has no translation.
    return None if found == message.msgid and not _same_in_both(message, translations) else found


def _same_in_both(message: Message, translations: Translations) -> bool:
    # A few words are the same in French ("DPO"): present in the catalogue with an identical msgstr.
    catalog: dict[Any, str] = getattr(translations, "_catalog", {})
    key: Any = message.msgid if message.context is None else f"{message.context}\x04{message.msgid}"
    return key in catalog


def message_to_json(message: Message) -> dict[str, Any]:
    """What a stored message keeps so that it can be said again in any language: msgid, context, parameters
    (a parameter that is itself a message, such as a state, kept the same way; any other as its text or number)."""
    params: dict[str, Any] = {}
    for name, value in message.params.items():
        if isinstance(value, Message):
            params[name] = {"message": message_to_json(value)}
        elif isinstance(value, float) and not math.isfinite(value):
            params[name] = str(value)  # JSON has no inf or NaN: PostgreSQL refuses them, so kept as text
        elif isinstance(value, bool | int | float) or value is None:
            params[name] = value
        else:
            params[name] = str(value)
    return {"msgid": message.msgid, "context": message.context, "params": params}


def message_from_json(data: dict[str, Any]) -> Message:
    params = {
        name: message_from_json(value["message"]) if isinstance(value, dict) else value
        for name, value in data.get("params", {}).items()
    }
    return Message(str(data["msgid"]), data.get("context"), **params)
