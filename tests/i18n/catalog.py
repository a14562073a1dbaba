"""The message catalog: what bfa says to people, extracted; the zh_CN catalog updated and
compiled (``make i18n``: ``python -m tests.i18n.catalog``).

Messages come from three places (docs/adr/0031-languages.md):

1. the source, by Babel's Python extractor: calls of ``_``/``gettext``/``N_`` (a message),
   ``ngettext`` (singular and plural) and ``msg`` (a break message's template) in the
   five packages — and, for the calls inside f-strings that Babel skips, by a walk of
   the syntax tree;
2. the command tree: each command's help as click shows it (``cli._i18n.help_id``), its
   first sentence (the command lists), and each option's help — they stay plain English
   in the source and are looked up when help is shown;
3. click's own words (``Usage:``, ``Options``, its error messages), from the click that
   is installed.

``update`` merges them into ``schemas/locale/zh_CN/LC_MESSAGES/bfa.po`` (translations
kept, new messages added empty, gone ones dropped) and compiles ``bfa.mo`` beside it,
which the wheel ships. tests/i18n/test_catalog.py fails while any message has no
translation, a translation's ``{fields}`` differ from its message's, or ``bfa.mo`` is not
the compilation of ``bfa.po``.
"""

from __future__ import annotations

import ast
import functools
import importlib
import io
import sys
from collections.abc import Iterator
from pathlib import Path

import click
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "ledger", "reconcile", "archive", "cli")
PO = ROOT / "schemas" / "locale" / "zh_CN" / "LC_MESSAGES" / "bfa.po"
MO = PO.with_suffix(".mo")
KEYWORDS: dict[str, tuple[int, ...] | None] = {
    "_": None, "gettext": None, "N_": None, "ngettext": (1, 2), "msg": (1,)}
CLICK_FILES = ("core.py", "exceptions.py", "types.py", "parser.py", "formatting.py",
               "decorators.py", "termui.py")
"""click's modules whose words a bfa user meets (not its shell completion or Windows
console)."""

Message = str | tuple[str, str]


def _from_source(root: Path, files: tuple[str, ...] | None = None) -> Iterator[Message]:
    for filename, _line, message, _comments, _context in extract_from_dir(
            str(root), method_map=[("**.py", "python")], keywords=KEYWORDS,
            comment_tags=()):
        if files is not None and Path(filename).name not in files:
            continue
        if isinstance(message, tuple):
            if message[0]:
                yield (str(message[0]), str(message[1]))
        elif message:
            yield str(message)


def _from_syntax(root: Path) -> Iterator[str]:
    """Literal messages of ``_``/``gettext``/``N_``/``msg`` calls, found in the syntax
    tree: also those inside f-strings, which Babel's extractor skips."""
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("_", "gettext", "N_", "msg") and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)):
                yield node.args[0].value


def _from_commands() -> Iterator[str]:
    from cli import COMMANDS, bfa
    from cli._i18n import help_id

    for module, _first in COMMANDS.values():
        importlib.import_module(module)

    def walk(cmd: click.Command) -> Iterator[str]:
        if cmd.help:
            yield help_id(cmd.help)
            yield click.Command.get_short_help_str(cmd, limit=300)
        for p in cmd.params:
            text = getattr(p, "help", None)
            if text:
                yield str(text)
        if isinstance(cmd, click.Group):
            for sub in cmd.commands.values():
                yield from walk(sub)

    yield from walk(bfa)
    # click's words that reach its ``_`` as values, not literals
    yield from ("Show this message and exit.", "Show the version and exit.", "Commands",
                "required")


@functools.cache
def messages() -> list[Message]:
    """Every message people may read, in a stable order, each once (extracted once a
    process)."""
    found: dict[Message, None] = {}
    for pkg in PACKAGES:
        found.update(dict.fromkeys(_from_source(ROOT / pkg)))
        found.update(dict.fromkeys(m for m in _from_syntax(ROOT / pkg) if m not in found))
    found.update(dict.fromkeys(_from_commands()))
    found.update(dict.fromkeys(_from_source(Path(click.__file__).parent, CLICK_FILES)))
    return [m for m in found if (m[0] if isinstance(m, tuple) else m).strip()]


def read_catalog(path: Path = PO) -> Catalog:
    with path.open("rb") as f:
        return read_po(f, locale="zh_CN", domain="bfa")


def compiled(catalog: Catalog) -> bytes:
    buf = io.BytesIO()
    write_mo(buf, catalog)
    return buf.getvalue()


def update() -> tuple[int, int]:
    """Merge the messages into bfa.po and compile bfa.mo; (messages, untranslated)."""
    old = read_catalog() if PO.exists() else Catalog(locale="zh_CN", domain="bfa")
    new = Catalog(locale="zh_CN", domain="bfa", project="bfa-ledger",
                  copyright_holder="BFA Ledger", charset="utf-8")
    new.creation_date = old.creation_date
    new.revision_date = old.revision_date if PO.exists() else new.creation_date
    new.fuzzy = False  # the header: compiled only when not fuzzy (charset, plural forms)
    new.last_translator = "BFA Ledger developers"
    new.language_team = "BFA Ledger developers"
    missing = 0
    for m in messages():
        kept = old.get(m[0] if isinstance(m, tuple) else m)
        string: str | tuple[str, ...] = ("", "") if isinstance(m, tuple) else ""
        if kept is not None and kept.string:
            string = kept.string
        if not (string if isinstance(string, str) else all(string)):
            missing += 1
        new.add(m, string)
    PO.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    write_po(buf, new, width=100, omit_header=False, sort_output=False,
             include_lineno=False, include_previous=False)
    PO.write_bytes(buf.getvalue())
    MO.write_bytes(compiled(read_catalog()))
    return len(new), missing


if __name__ == "__main__":
    total, untranslated = update()
    print(f"{PO.relative_to(ROOT)}: {total} messages, {untranslated} without a translation; "
          f"compiled {MO.relative_to(ROOT)}")
    sys.exit(0)
