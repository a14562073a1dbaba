"""The language people read bfa in: Chinese (``zh_CN``) or English (``en``).

Every text a person reads is an English *message id* looked up in a gettext catalog
(domain ``bfa``; ``schemas/locale/zh_CN/LC_MESSAGES/bfa.po``, compiled to ``bfa.mo`` by
``make i18n`` and shipped in the wheel). English is the id itself, so English needs no
catalog and a message missing from the catalog shows in English rather than not at all
(``tests/i18n`` fails the build when one is missing).

The language of this process (or task: it is a context variable) is set by
:func:`set_language` — the CLI does so from ``--lang``, else the home's ``config.json``
``lang``, else the locale (:func:`language_from_env`). Library code never picks a
language: it calls :func:`gettext` when it renders for a person, and never for bytes
that are hashed, signed or compared (ledger entries, evidence digests, break ids).

This module imports only the standard library, so the CLI's fast paths
(``bfa --help``) can use it without loading the ledger.
"""

from __future__ import annotations

import gettext as _gettext
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path

LANGUAGES = ("zh_CN", "en")
"""The languages bfa speaks; the first is the one its users work in."""

DOMAIN = "bfa"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
"""Where the catalogs are: ``LOCALE_DIR/<lang>/LC_MESSAGES/bfa.mo``."""

_current: ContextVar[str | None] = ContextVar("bfa_language", default=None)


def parse_language(text: str | None) -> str | None:
    """``zh_CN`` for a Chinese locale name (``zh``, ``zh_CN.UTF-8``, ``zh-Hans``,
    ``zh_SG``), ``en`` for English and the C locale, None for anything else.

    >>> parse_language("zh_CN.UTF-8"), parse_language("en_US"), parse_language("C")
    ('zh_CN', 'en', 'en')
    """
    if not text:
        return None
    name = text.strip().split(".", 1)[0].split("@", 1)[0].replace("-", "_").lower()
    if name == "zh" or name.startswith("zh_"):
        return "zh_CN"
    if name in ("c", "posix", "en") or name.startswith("en_"):
        return "en"
    return None


def language_from_env(environ: Mapping[str, str] | None = None) -> str:
    """The locale's language: the first of ``LC_ALL``, ``LC_MESSAGES``, ``LANG`` that is
    set decides (POSIX precedence); ``en`` when none is, or it names another language."""
    env = os.environ if environ is None else environ
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(var, "")
        if value:
            return parse_language(value) or "en"
    return "en"


def set_language(lang: str | None) -> None:
    """Use ``lang`` (one of :data:`LANGUAGES`) from now on in this context; None goes
    back to the locale's language."""
    if lang is not None and lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}: use one of {', '.join(LANGUAGES)}")
    _current.set(lang)


def current_language() -> str:
    """The language set by :func:`set_language`, else the locale's."""
    lang = _current.get()
    return language_from_env() if lang is None else lang


@contextmanager
def language(lang: str | None) -> Iterator[None]:
    """Render in ``lang`` inside the block (the report of one run, say)."""
    token = _current.set(lang)
    try:
        yield
    finally:
        _current.reset(token)


@cache
def _catalog(lang: str) -> _gettext.NullTranslations:
    if lang == "en":
        return _gettext.NullTranslations()
    return _gettext.translation(DOMAIN, LOCALE_DIR, languages=[lang], fallback=True)


def gettext(message: str) -> str:
    """``message`` in the current language (itself in English, or when untranslated)."""
    return _catalog(current_language()).gettext(message) if message else message


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form for ``n``, in the current language."""
    return _catalog(current_language()).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Marks ``message`` for the catalog without translating it (a table of labels,
    say, translated where it is shown)."""
    return message


def translated(message: str, lang: str) -> bool:
    """Whether the catalog of ``lang`` holds ``message`` (English always does)."""
    if lang == "en":
        return True
    cat = _catalog(lang)
    held: dict[str, str] = getattr(cat, "_catalog", {})  # GNUTranslations' own table
    return bool(held.get(message))
