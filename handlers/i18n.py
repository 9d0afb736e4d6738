"""The reader's language: gettext catalogs, one locale per process (SPEC §13).

Every user-facing text is an English msgid wrapped where it is written: `_("…{node}…")` with
named placeholders filled after translation, `ngettext` where a count appears, and `N_("…")`
for text defined at import time (it is translated where it is shown, with `_`). Ids, JSON keys,
commands and evidence quoted from the cluster are never wrapped. The catalogs are
`handlers/locale/<ll_CC>/LC_MESSAGES/winpod.po`, compiled to the `.mo` shipped beside them
(`make catalog`, README "Translating").
"""

from __future__ import annotations

import gettext
import threading
from pathlib import Path
from typing import Literal, get_args

Locale = Literal["en", "zh-CN"]
LOCALES: tuple[str, ...] = get_args(Locale)
DOMAIN = "winpod"
LOCALE_DIR = Path(__file__).with_name("locale")

_lock = threading.Lock()
_current: gettext.NullTranslations = gettext.NullTranslations()
_name: str = "en"


def catalog_name(locale: str) -> str:
    """`zh-CN` → `zh_CN`, gettext's spelling of a locale (the catalog's directory)."""
    return locale.replace("-", "_")


def use(locale: str) -> None:
    """Speak `locale` from now on, in this process; English needs no catalog."""
    global _current, _name
    if locale not in LOCALES:
        raise ValueError(f"unknown locale {locale!r}; winpod speaks {', '.join(LOCALES)}")
    translations = (
        gettext.NullTranslations()
        if locale == "en"
        else gettext.translation(DOMAIN, LOCALE_DIR, languages=[catalog_name(locale)])
    )
    with _lock:
        _current, _name = translations, locale


def current() -> str:
    return _name


def _(message: str) -> str:
    """`message` in the current locale (itself when the catalog lacks it)."""
    return _current.gettext(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    """The form of `singular`/`plural` for `count` in the current locale."""
    return _current.ngettext(singular, plural, count)


def N_(message: str) -> str:  # gettext's conventional name for a marker
    """Marks `message` for the catalog where it is defined; `_` translates it where shown."""
    return message
