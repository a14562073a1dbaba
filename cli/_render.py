"""Renderers: turn library results into text or JSON. No click here, testable alone.

Text for a terminal is measured in display columns: a Chinese character (East Asian wide
or full-width) takes two, so tables stay aligned with Chinese notes and names in them.
"""

from __future__ import annotations

import json
import shutil
import unicodedata
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Any

from cli._i18n import fill
from ledger import local_time as ledger_local_time
from ledger import printable
from schemas import gettext as _


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)


_HOLE = "\x00listed here\x00"


def json_chunks(doc: Mapping[str, Any], key: str, items: Iterable[Any]) -> Iterator[str]:
    """``to_json({**doc, key: list(items)})`` in pieces, ``items`` read one at a time: a
    report whose list may hold millions of items is printed without holding its text."""
    whole = to_json({**doc, key: [_HOLE]})
    before, after = whole.split(json.dumps(_HOLE))
    indent = before[before.rindex("\n") + 1:]  # the list's items start at this indent
    opening = before[:-len(indent) - 1]  # up to and with the "["
    closing = after[after.index("]"):]  # from the "]" on
    first = True
    for item in items:
        text = to_json(item).replace("\n", "\n" + indent)
        yield (opening + "\n" if first else ",\n") + indent + text
        first = False
    yield opening + closing if first else "\n" + indent[:-2] + closing


def width(text: str) -> int:
    """Terminal columns of ``text``: East Asian wide and full-width characters take two,
    combining marks none."""
    return sum(0 if unicodedata.combining(ch) else
               2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def clip(text: str, cols: int) -> str:
    """``text`` cut to at most ``cols`` display columns, ``…`` marking a cut."""
    if width(text) <= cols:
        return text
    out, used = [], 0
    for ch in text:
        w = width(ch)
        if used + w > cols - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


def wrapped(text: str, indent: str = "  ", cols: int = 78) -> list[str]:
    """``text`` (made printable) in lines of at most ``cols`` display columns, broken at
    spaces and between Chinese characters; continuation lines indented two more (a word
    longer than a line stays whole)."""
    return fill(printable(text), cols, indent, indent + "  ") or [indent]


def pad(text: str, cols: int, right: bool = False) -> str:
    gap = " " * max(0, cols - width(text))
    return gap + text if right else text + gap


def terminal_width(default: int = 80) -> int:
    """Columns of the terminal (``COLUMNS``, else the terminal's size, else 80)."""
    return max(40, shutil.get_terminal_size((default, 24)).columns)


def local_time(timestamp: object) -> str:
    """An RFC 3339 time as people here read it: Asia/Shanghai, to the second
    (``2026-11-30 09:15:02+08:00``; ``ledger.local_time``); anything else, printable."""
    return printable(ledger_local_time(timestamp))


def yuan(amount: str, sign: str = "") -> str:
    """A money string (``-1234.5`` or ``1234.50``) with thousands separators."""
    neg, digits = (True, amount[1:]) if amount.startswith("-") else (False, amount)
    whole, _dot, part = digits.partition(".")
    if not whole.isdigit():
        return amount
    return f"{'-' if neg else ''}{sign}{int(whole):,}" + (f".{part}" if part else "")


def table(rows: list[dict[str, Any]], columns: list[str], *,
          right: Collection[str] = (), fit: int | None = None,
          headers: Mapping[str, str] | None = None, cut: str | None = None) -> str:
    """A fixed-width text table; one row is one line (control characters and line
    separators in a cell are shown as backslash escapes, so no value can break or forge a
    row). Columns in ``right`` are right-aligned (amounts); with ``fit`` the column
    ``cut`` (default: the last) is cut (``…``) so that no line is wider than ``fit``
    display columns.

    ``columns`` are the keys of ``rows``; ``headers`` maps a key to the header shown for
    it (translated: ``{"amount": _("amount")}``), the key itself when it has none. Widths
    are measured on the shown headers, so a Chinese header keeps the table aligned."""
    if not rows:
        return _("(none)")
    heads = {c: printable((headers or {}).get(c, c)) for c in columns}
    cells = [{c: printable(str(r.get(c, ""))) for c in columns} for r in rows]
    widths = {c: max(width(heads[c]), *(width(r[c]) for r in cells)) for c in columns}
    if fit is not None and columns:
        last = cut if cut in columns else columns[-1]
        room = fit - sum(widths[c] + 2 for c in columns if c != last)
        if widths[last] > room:
            widths[last] = max(width(heads[last]), room)
            for r in cells:
                r[last] = clip(r[last], widths[last])
    head = "  ".join(pad(heads[c], widths[c], c in right) for c in columns)
    lines = [head.rstrip(), "  ".join("-" * widths[c] for c in columns)]
    for r in cells:
        lines.append("  ".join(pad(r[c], widths[c], c in right) for c in columns).rstrip())
    return "\n".join(lines)
