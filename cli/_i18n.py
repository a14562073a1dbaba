"""The language of the ``bfa`` command line, and help texts rendered in it.

The language is ``--lang`` (before the command), else ``BFA_LANG``, else the home's
``config.json`` ``lang`` (the home of ``--home``, ``BFA_HOME`` or ``./.bfa``), else the
locale (``LC_ALL``, ``LC_MESSAGES``, ``LANG``): :func:`choose`. Once chosen it is set for
the whole library (``schemas.set_language``), so reports the reconciler renders come out
in it too.

Help texts stay English in the source (docstrings and ``help=``): they are the message
ids, looked up when help is shown (:class:`Translated`). click's own words (``Usage:``,
``Options``, its error messages) are looked up in the same catalog, by pointing click's
modules at :func:`schemas.gettext`.

English needs nothing of this: while the language is English no catalog is read and
``schemas`` is not imported, so ``bfa --help`` stays fast (tests/cli/test_startup.py).
"""

from __future__ import annotations

import inspect
import json
import os
import re
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import click

_CLICK_MODULES = ("click.core", "click.exceptions", "click.formatting", "click.types",
                  "click.parser", "click.decorators", "click.termui", "click.utils",
                  "click._termui_impl")
_chosen: list[str] = []
_explicit: list[bool] = [False]


def _quick(text: str | None) -> str | None:
    """``zh_CN`` or ``en`` for a locale or language name; None for anything else
    (``schemas.parse_language`` says the same; this one needs no import)."""
    name = (text or "").strip().split(".", 1)[0].replace("-", "_").lower()
    if name == "zh" or name.startswith("zh_"):
        return "zh_CN"
    if name in ("c", "posix", "en") or name.startswith("en_"):
        return "en"
    return None


def _home_lang(argv: Sequence[str]) -> str | None:
    """``lang`` of the home's ``config.json`` (``--home DIR`` in ``argv``, else
    ``BFA_HOME``, else ``./.bfa``); None when there is none or it cannot be read (the
    command itself then reports a broken configuration)."""
    home = os.environ.get("BFA_HOME") or ".bfa"
    for i, arg in enumerate(argv):
        if arg == "--home" and i + 1 < len(argv):
            home = argv[i + 1]
        elif arg.startswith("--home="):
            home = arg.split("=", 1)[1]
    try:
        loaded = json.loads((Path(home) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return _quick(loaded.get("lang")) if isinstance(loaded, dict) else None


def choose(explicit: str | None, argv: Sequence[str], source: str = "--lang") -> str:
    """The language to use: ``explicit`` (``--lang``/``BFA_LANG``), the home's, the
    locale's. An ``explicit`` value that names no language bfa speaks is a usage error,
    said in the language bfa would otherwise speak."""
    if explicit:
        lang = _quick(explicit)
        if lang is None:
            use(choose(None, argv))
            raise click.BadParameter(
                (tr("{value}: use zh_CN or en") or "").format(value=repr(explicit)),
                param_hint=f"'{source}'")
        return lang
    lang = _home_lang(argv)
    if lang is not None:
        return lang
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var, "")
        if value:
            return _quick(value) or "en"
    return "en"


def use(lang: str, *, explicit: bool = False) -> None:
    """Speak ``lang`` from now on: the library's messages and click's own words;
    ``explicit`` when ``--lang`` or ``BFA_LANG`` chose it."""
    _chosen[:] = [lang]
    _explicit[0] = explicit
    if lang == "en" and "schemas" not in sys.modules:
        return  # nothing to translate, and the fast path imports nothing
    import schemas

    schemas.set_language(lang)
    for name in _CLICK_MODULES:
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "_"):
            setattr(module, "_", schemas.gettext)  # noqa: B010 — another module's global
        if module is not None and hasattr(module, "ngettext"):
            setattr(module, "ngettext", schemas.ngettext)  # noqa: B010


def explicit() -> bool:
    """Whether ``--lang`` or ``BFA_LANG`` chose the language of this run."""
    return _explicit[0]


def language() -> str:
    """The language chosen for this run (English before :func:`use`)."""
    return _chosen[0] if _chosen else "en"


def tr(text: str | None) -> str | None:
    """``text`` in the chosen language (itself in English, or when it has no translation)."""
    if not text or language() == "en":
        return text
    import schemas

    return schemas.gettext(text)


def help_id(text: str) -> str:
    """The message id of a command's help: the docstring as click shows it (indentation
    removed, cut at a form feed)."""
    return inspect.cleandoc(text).partition("\f")[0]


class Translated:
    """Mixed into bfa's click commands and groups: help shown in the chosen language.

    The command's and its options' help are swapped for their translations while click
    formats them, so click's layout (wrapping, ``\\b`` blocks, defaults) is kept."""

    help: str | None
    short_help: str | None

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if language() == "en":
            super().format_help(ctx, formatter)  # type: ignore[misc]
            return
        params: list[Any] = list(ctx.command.get_params(ctx))
        saved = [(p, getattr(p, "help", None)) for p in params]
        own = (self.help, self.short_help)
        try:
            self.help = tr(help_id(self.help)) if self.help else self.help
            for p, text in saved:
                if text:
                    p.help = tr(text)
            super().format_help(ctx, formatter)  # type: ignore[misc]
        finally:
            self.help, self.short_help = own
            for p, text in saved:
                if hasattr(p, "help"):
                    p.help = text

    def get_short_help_str(self, limit: int = 45) -> str:
        english: str = super().get_short_help_str(limit)  # type: ignore[misc]
        return tr(english) or english


_TOKENS = re.compile(r"\s+|[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f]|"
                     r"[^\s\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f]+")
_NO_LINE_START = set("，。、；：？！）》」』】”’,.;:?!)")


def _width(text: str) -> int:
    return sum(0 if unicodedata.combining(ch) else
               2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def fill(text: str, width: int, first: str = "", rest: str = "") -> list[str]:
    """``text`` in lines of at most ``width`` display columns: a Chinese character takes
    two and a line may break between any two of them, never before closing punctuation
    (the character before it moves down with it); other text breaks at spaces."""
    lines: list[str] = []
    toks: list[str] = []  # the current line's tokens after its indent
    indent = first

    def used() -> int:
        return _width(indent) + sum(_width(t) for t in toks)

    for tok in _TOKENS.findall(text):
        if tok.isspace():
            if toks and not toks[-1].isspace():
                toks.append(" ")
            continue
        if used() + _width(tok) > width and any(not t.isspace() for t in toks):
            carry: list[str] = []
            while tok in _NO_LINE_START and len(toks) > 1 and not toks[-1].isspace():
                carry.insert(0, toks.pop())  # keep the punctuation with what it closes
                if toks[-1] not in _NO_LINE_START:
                    break
            lines.append((indent + "".join(toks)).rstrip())
            indent, toks = rest, [t for t in carry if not t.isspace()]
        toks.append(tok)
    if any(not t.isspace() for t in toks):
        lines.append((indent + "".join(toks)).rstrip())
    return lines


_WIDE = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f]")
_PUNCT = re.compile(r"[\uff00-\uffef\u3000-\u303f]")  # full-width and CJK punctuation


def _joined(lines: Iterable[str]) -> str:
    """The lines of a paragraph as one: a space between them, except where Chinese meets
    Chinese (a line break there is no word break)."""
    out = ""
    for ln in lines:
        if out and ln:
            tight = (_WIDE.match(out[-1]) and _WIDE.match(ln[0])) or _PUNCT.match(out[-1]) \
                or _PUNCT.match(ln[0])
            out += ln if tight else " " + ln
        else:
            out += ln
    return out


def _paragraphs(text: str, width: int, indent: str) -> list[str]:
    """click's paragraphs (blank-line separated; a ``\\b`` line keeps its block as it
    is), each filled to ``width``."""
    out: list[str] = []
    for para in re.split(r"\n\s*\n", text.strip("\n")):
        lines = para.splitlines()
        if lines and lines[0].strip() == "\b":
            out += [indent + ln for ln in lines[1:]]
        else:
            own = indent + " " * (len(lines[0]) - len(lines[0].lstrip())) if lines else indent
            out += fill(_joined(ln.strip() for ln in lines), width, own, own)
        out.append("")
    return out[:-1]


class Formatter(click.HelpFormatter):
    """click's help layout, measured in display columns and broken between Chinese
    characters when the language is not English (click breaks only at spaces)."""

    def write_heading(self, heading: str) -> None:
        if language() == "en":
            super().write_heading(heading)
            return
        self.write(f"{'':>{self.current_indent}}{heading}：\n")

    def write_text(self, text: str) -> None:
        if language() == "en":
            super().write_text(text)
            return
        lines = _paragraphs(text, self.width, " " * self.current_indent)
        self.write("\n".join(lines) + "\n")

    def write_dl(self, rows: Iterable[tuple[str, str]], col_max: int = 30,
                 col_spacing: int = 2) -> None:
        rows = list(rows)
        if language() == "en":
            super().write_dl(rows, col_max, col_spacing)
            return
        first_col = min(max((_width(a) for a, _b in rows), default=0), col_max) + col_spacing
        pad = " " * (first_col + self.current_indent)
        for term, text in rows:
            head = " " * self.current_indent + term
            if not text:
                self.write(head + "\n")
                continue
            if _width(term) <= first_col - col_spacing:
                head += " " * (first_col - _width(term))
            else:
                self.write(head + "\n")
                head = pad
            body = _paragraphs(text, max(self.width - first_col - 2, 10) + len(pad), pad)
            body = [ln[len(pad):] if ln.startswith(pad) else ln for ln in body]
            self.write(head + (body[0] if body else "") + "\n")
            for ln in body[1:]:
                self.write((pad + ln if ln else "") + "\n")


class Context(click.Context):
    """bfa's click context: help in :class:`Formatter`."""

    formatter_class = Formatter
