"""Archive findings: ``FIXITY_FAILURE`` and ``VOUCHER_DEFECT`` from the ledger's own entries.

The archive layer re-reads voucher files (``bfa archive audit``) and inspects them (the
四性 checks of ``bfa archive check`` and of every ingest); each run is a control entry
(FORMAT.md §2.5: ``control.fixity``, ``control.voucher_check``). This module owns the
*fold* of those entries into the current state, read from the entries alone (each checked
against its leaf), never from a working table:

- **fixity**: an audit covers a slice of the hash space (``scope``: ``start``,
  ``length`` over the first 32 bits of the SHA-256, wrapping); every file it covers is
  judged anew by it: the files it found ``changed`` or ``missing`` fail, the others in
  its slice no longer do. A ``restore`` clears one file. :func:`fixity_state`;
- **voucher checks**: a record's latest result wins; an entry lists the records that
  failed (with their findings) and those it cleared (failed before, pass now).
  :func:`defect_state`.

:func:`archive_breaks` turns both into breaks; the layers above write the entries.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from ledger import control_records, local_time
from reconcile.matching import _tables as t
from reconcile.reports._report import Msg, msg
from schemas import N_

SPACE = 1 << 32
"""The hash space an audit's scope is measured in: the first 32 bits of a SHA-256."""

FIXITY_KIND = "fixity"
CHECK_KIND = "voucher_check"

PROPERTIES = ("authenticity", "integrity", "usability", "security", "retention")
"""The properties a voucher check judges, in the order a break names the first failing one
(真实性, 完整性, 可用性, 安全性 of DA/T 70, and the retention the record declares)."""


def hash_key(sha256: str) -> int:
    """Where a file lies in the hash space: its SHA-256's first 32 bits."""
    return int(sha256[:8], 16)


def in_scope(sha256: str, start: int, length: int) -> bool:
    """Whether an audit of ``length`` keys from ``start`` (wrapping) covers ``sha256``."""
    return (hash_key(sha256) - start) % SPACE < length


@dataclass(frozen=True, slots=True)
class FixityFailure:
    """A voucher file the latest audit covering it found ``changed`` or ``missing``."""

    sha256: str
    state: str
    records: tuple[str, ...]
    audit: str
    """Id of the ``control.fixity`` entry that found it."""
    at: str


@dataclass(frozen=True, slots=True)
class Defect:
    """A voucher whose latest check failed: its findings, in property order."""

    record: str
    sha256: str
    findings: tuple[Mapping[str, Any], ...]
    check: str
    """Id of the ``control.voucher_check`` entry that found it."""

    @property
    def property(self) -> str:
        props = [str(f.get("property")) for f in self.findings]
        return next((p for p in PROPERTIES if p in props), props[0] if props else "usability")


def _records(conn: Connection, kind: str) -> Iterator[tuple[int, dict[str, Any]]]:
    return control_records(conn, kind)


def fold_fixity(records: Iterator[tuple[int, dict[str, Any]]]) -> dict[str, FixityFailure]:
    """The files failing after the given ``control.fixity`` records, in ``seq`` order."""
    failing: dict[str, FixityFailure] = {}
    for _seq, rec in records:
        action = rec.get("action")
        if action == "restore":
            failing.pop(str(rec.get("sha256")), None)
            continue
        if action != "audit":
            continue
        scope = rec.get("scope") or {}
        start, length = int(scope.get("start", 0)), int(scope.get("length", SPACE))
        if length >= SPACE:
            failing.clear()
        else:
            for sha in [h for h in failing if in_scope(h, start, length)]:
                del failing[sha]
        for state in ("changed", "missing"):
            for item in rec.get(state) or ():
                sha = str(item["sha256"])
                failing[sha] = FixityFailure(sha, state, tuple(item.get("records") or ()),
                                             str(rec.get("id")), str(rec.get("at")))
    return failing


def fixity_state(conn: Connection) -> dict[str, FixityFailure]:
    """The voucher files failing now, by SHA-256, from every ``control.fixity`` entry."""
    return fold_fixity(_records(conn, FIXITY_KIND))


def fold_defects(records: Iterator[tuple[int, dict[str, Any]]]) -> dict[str, Defect]:
    """The vouchers failing after the given records (``control.voucher_check`` entries
    and the ``control.ingest`` entries of batches with vouchers), in ``seq`` order."""
    failing: dict[str, Defect] = {}
    for _seq, outer in records:
        rec = outer.get("voucher_check")
        if not isinstance(rec, dict):
            continue
        for rid in rec.get("cleared") or ():
            failing.pop(str(rid), None)
        for item in rec.get("failed") or ():
            rid = str(item["record"])
            failing[rid] = Defect(rid, str(item.get("sha256", "")),
                                  tuple(item.get("findings") or ()), str(outer.get("id")))
    return failing


def defect_state(conn: Connection) -> dict[str, Defect]:
    """The vouchers failing their checks now, by record id."""
    return fold_defects(heapq.merge(_records(conn, CHECK_KIND), _records(conn, "ingest"),
                                    key=lambda r: r[0]))


def _superseded(conn: Connection, ids: list[str]) -> set[str]:
    """The archive record ids among ``ids`` that a correction superseded."""
    r = t.records.c
    out: set[str] = set()
    for i in range(0, len(ids), 500):
        out |= set(conn.execute(select(r.record_id).where(
            r.domain == "archive", r.superseded.is_(True),
            r.record_id.in_(ids[i:i + 500]))).scalars())
    return out


AddBreak = Callable[[str, tuple[str, ...], dict[str, int], str, Msg], None]


def archive_breaks(conn: Connection, add: AddBreak) -> None:
    """``FIXITY_FAILURE`` per failing file and ``VOUCHER_DEFECT`` per failing voucher,
    handed to ``add(code, records, amounts, field, message)``."""
    for f in sorted(fixity_state(conn).values(), key=lambda f: f.sha256):
        what = (N_("voucher file sha256:{file}… has changed in the archive store (audit "
                   "{audit}, {at}); put the original back with 'bfa archive restore FILE'")
                if f.state == "changed" else
                N_("voucher file sha256:{file}… is missing from the archive store (audit "
                   "{audit}, {at}); put the original back with 'bfa archive restore FILE'"))
        add("FIXITY_FAILURE", tuple(sorted(f.records)), {}, "file",
            msg(what, file=f.sha256[:16], audit=f.audit, at=local_time(f.at)))
    defects = defect_state(conn)
    corrected = _superseded(conn, sorted(defects))
    for d in sorted(defects.values(), key=lambda d: d.record):
        if d.record in corrected:
            continue  # a corrected voucher: its correction is checked on its own
        reasons = "; ".join(
            str(x.get("detail")) if x.get("property") == d.property
            else f"{x.get('property')}: {x.get('detail')}" for x in d.findings) or "failed"
        add("VOUCHER_DEFECT", (d.record,), {}, d.property,
            msg("voucher {record} fails the 四性 check on {property}: {reasons} (check {check})",
                record=d.record, property=d.property, reasons=reasons, check=d.check))
