"""The zh_CN catalog is complete and is what ships: every message people may read has a
translation with the same ``{fields}``, and ``bfa.mo`` is the compilation of ``bfa.po``.

When this fails after a change of wording: run ``make i18n`` and translate what it
reports empty in ``schemas/locale/zh_CN/LC_MESSAGES/bfa.po``.
"""

from __future__ import annotations

import re
import string

from tests.i18n.catalog import MO, compiled, messages, read_catalog

PERCENT = re.compile(r"%(?:\([A-Za-z_]+\))?[sdr]")


def _fields(text: str) -> list[str]:
    return sorted(name for _lit, name, _spec, _conv in string.Formatter().parse(text)
                  if name is not None)


def _ids(m: str | tuple[str, str]) -> str:
    return m[0] if isinstance(m, tuple) else m


def test_every_message_has_a_zh_cn_translation() -> None:
    cat = read_catalog()
    missing = []
    for m in messages():
        entry = cat.get(_ids(m))
        strings = () if entry is None else (
            entry.string if isinstance(entry.string, tuple) else (entry.string,))
        if entry is None or not strings or not all(strings) or entry.fuzzy:
            missing.append(_ids(m))
    assert not missing, (f"{len(missing)} messages have no zh_CN translation (run make i18n, "
                         f"then translate them in bfa.po); first: {missing[:5]}")


def test_translations_fill_the_same_fields() -> None:
    """A brace-format message's translation names exactly its fields (a missing one
    loses a value, an unknown one fails at render time and falls back to English)."""
    bad = []
    for entry in read_catalog():
        if not entry.id or "python-brace-format" not in entry.flags:
            continue
        ids = entry.id if isinstance(entry.id, tuple) else (entry.id,)
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        want = _fields(ids[0])
        for s in strings:
            if s and _fields(s) != want:
                bad.append((ids[0], s))
    assert not bad, bad[:5]


def test_click_messages_keep_their_percent_fields() -> None:
    """click's own messages are %-formatted: ``%(name)s`` fields kept, one for one."""
    bad = []
    for entry in read_catalog():
        ids = entry.id if isinstance(entry.id, tuple) else (entry.id,)
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        if not ids[0] or "python-format" not in entry.flags:
            continue
        want = sorted(PERCENT.findall(ids[0]))
        bad += [(ids[0], s) for s in strings if s and sorted(PERCENT.findall(s)) != want]
    assert not bad, bad[:5]


def test_the_shipped_catalog_is_the_compiled_po() -> None:
    assert MO.read_bytes() == compiled(read_catalog()), "run make i18n to compile bfa.mo"


def test_catalog_keeps_no_message_nobody_says() -> None:
    said = {_ids(m) for m in messages()}
    stale = [e.id for e in read_catalog() if e.id and _ids(e.id) not in said]
    assert not stale, f"run make i18n: {stale[:5]}"
