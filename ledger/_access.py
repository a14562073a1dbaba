"""The access audit: who saw, erased, disclosed or was granted what, read from the ledger.

Every access to personal data and every change of rights is a control entry (FORMAT.md
§2.5): ``control.reveal`` (clear values shown, with the purpose), ``control.forget``
(a person's clear values erased), ``control.grant`` (database rights given to a role),
and, as other commands add them, ``control.disclose`` (personal data leaving in a bundle)
and ``control.compare`` (an outside list compared). :func:`access_events` lists them in
ledger order, read through the partial index ``ix_entries_control`` and each checked
against its leaf, so the audit is exactly what the signed ledger holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from ledger import _schema as s
from ledger._control import checked_entry

ACCESS_KINDS = ("reveal", "forget", "grant", "key", "disclose", "compare")
"""Kinds of control records the access audit lists."""

TZ = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True, slots=True)
class AccessEvent:
    """One access or grant, as its control entry records it."""

    seq: int
    at: str
    """When, as recorded (RFC 3339, UTC)."""
    action: str
    """``reveal``, ``forget``, ``grant``, ``disclose`` or ``compare``."""
    user: str
    target: str
    """What it concerned: ``domain:record id``, a person's pseudonym, a role, a scope."""
    fields: tuple[str, ...]
    purpose: str

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at, "action": self.action, "user": self.user,
                "target": self.target, "fields": list(self.fields), "purpose": self.purpose}


def _target(kind: str, rec: dict[str, Any]) -> str:
    if kind == "reveal":
        r = rec.get("record") or {}
        return f"{r.get('domain')}:{r.get('id')}"
    if kind == "forget":
        return str(rec.get("subject", ""))
    if kind == "grant":
        duties = rec.get("duties")
        named = ", ".join(str(d) for d in duties) if isinstance(duties, list) else ""
        return f"role {rec.get('role')}" + (f" ({named})" if named else "")
    if kind == "key":
        if rec.get("action") == "rotate-signing":  # the key IDs (FORMAT.md §5.4)
            old, new = (str(rec.get(m, "")).split("+")[1:2] or ["?"]
                        for m in ("old_key", "new_key"))
            return f"rotate-signing {old[0]} -> {new[0]}"
        return f"{rec.get('action')} {rec.get('old_check')} -> {rec.get('new_check')}"
    if kind == "disclose":  # a bundle's records (FORMAT.md §12.4)
        recs = [r for r in rec.get("records") or () if isinstance(r, dict)]
        shown = ", ".join(f"{r.get('domain')}:{r.get('id')}" for r in recs[:3])
        more = f" and {len(recs) - 3} more" if len(recs) > 3 else ""
        return f"bundle: {shown}{more}" if recs else "bundle: no record"
    return str(rec.get("scope") or rec.get("source") or "")


def _local_day(at: str) -> date:
    return datetime.fromisoformat(at).astimezone(TZ).date()


def access_events(conn: Connection, *, since: date | None = None,
                  user: str | None = None) -> Iterator[AccessEvent]:
    """The access and grant records in ledger order; ``since`` (a day in Asia/Shanghai)
    and ``user`` (compared without regard to letter case) filter them."""
    e = s.entries.c
    q = (select(e.seq, e.leaf, e.entry_hash, e.kind, e.record_id)
         .where(e.domain == "control", e.kind.in_(ACCESS_KINDS)).order_by(e.seq))
    wanted = user.casefold() if user else None
    for seq, leaf, h, kind, rid in conn.execute(q):
        rec = checked_entry(int(seq), bytes(leaf), bytes(h), "control", str(rid)).record
        at = str(rec.get("at", ""))
        who = str(rec.get("user", ""))
        if wanted is not None and who.casefold() != wanted:
            continue
        if since is not None and at and _local_day(at) < since:
            continue
        fields = rec.get("fields") or ()
        yield AccessEvent(int(seq), at, str(kind), who, _target(str(kind), rec),
                          tuple(str(f) for f in fields), str(rec.get("purpose", "")))


__all__ = ["ACCESS_KINDS", "AccessEvent", "access_events"]
