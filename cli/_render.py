"""Renderers: turn library results into text or JSON. No click here, testable alone."""

from __future__ import annotations

import json
from typing import Any

from ledger import printable


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain fixed-width text table; one row is one line (control characters and
    line separators in a cell are shown as backslash escapes, so no value can break
    or forge a row)."""
    if not rows:
        return "(none)"
    cells = [{c: printable(str(r.get(c, ""))) for c in columns} for r in rows]
    widths = {c: max(len(c), *(len(r[c]) for r in cells)) for c in columns}
    head = "  ".join(c.ljust(widths[c]) for c in columns)
    lines = [head, "  ".join("-" * widths[c] for c in columns)]
    for r in cells:
        lines.append("  ".join(r[c].ljust(widths[c]) for c in columns))
    return "\n".join(lines)
