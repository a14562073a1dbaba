"""What a reconciliation run leaves in the ledger: the ``control.reconcile`` record.

The stored findings (``rc_findings``) and the run's watermark let the next run re-check
only what changed (ADR 0014). The application role may write them (FORMAT.md §8.3), so a
run does not take them on trust: it records, as a ``control.reconcile`` entry, the
watermark it covered, the digest of the rules, and an order-independent digest of the
findings it left stored (:class:`FindingsDigest`); the next run reads that entry back
from the ledger (``latest_numbered``: no stored pointer is believed) and checks the
stored findings against it before it keeps any of them. A mismatch is a
``LEDGER_INTEGRITY`` break and the run re-checks everything (FORMAT.md §2.5, §8.3).

The digest is a multiset hash: the sum, modulo 2^2048, of SHAKE-256 (256 bytes) of each
finding's bytes. A sum is independent of the rows' order and can be added up from parts
(the kept findings plus the new ones); with 2048 bits, finding another set of rows with
the same sum is far out of reach (generalised birthday attacks on such sums cost about
2^(2·√2048) ≈ 2^90 work). The record holds SHA-256 of the 256-byte sum.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from ledger import Actor, IntegrityError, Store, append_control, latest_numbered, now_rfc3339

RUN_PREFIX = "reconcile-"
"""Record ids of runs: ``reconcile-1``, ``reconcile-2``, … (a series without gaps)."""

RUN_HINT_KEY = "reconcile_run"
"""``meta`` key holding the number of the last run: only where the search starts."""

Stored = tuple[str, str, int, str]
"""A finding as stored: rule, root, position, the row's JSON text."""

_BITS = 2048
_MASK = (1 << _BITS) - 1


class FindingsDigest:
    """An order-independent, additive digest of stored findings (the module docstring)."""

    __slots__ = ("count", "total")

    def __init__(self) -> None:
        self.total = 0
        self.count = 0

    def add(self, rule: str, root: str, pos: int, row: str) -> None:
        """One stored finding: ``rule``, ``root``, ``pos`` and the row's JSON text exactly
        as stored (``rc_findings``), joined by NUL bytes."""
        material = f"{rule}\x00{root}\x00{pos}\x00{row}".encode()
        self.total += int.from_bytes(hashlib.shake_256(material).digest(_BITS // 8), "big")
        self.count += 1

    def merged(self, other: FindingsDigest) -> FindingsDigest:
        out = FindingsDigest()
        out.total = (self.total + other.total) & _MASK
        out.count = self.count + other.count
        return out

    def hexdigest(self) -> str:
        return hashlib.sha256((self.total & _MASK).to_bytes(_BITS // 8, "big")).hexdigest()


@dataclass(frozen=True, slots=True)
class LastRun:
    """What the last ``control.reconcile`` entry says."""

    run: int
    checked: int
    """The stored findings cover the records with ``seq`` below this."""
    rules: str
    findings: int
    digest: str


def last_run(store: Store, conn: Connection) -> LastRun | None:
    """The last run recorded in the ledger, or None before the first (or when the
    stored findings were made by a version that did not record runs)."""
    hint_text = store.get_meta(conn, RUN_HINT_KEY) or "0"
    hint = int(hint_text) if hint_text.isascii() and hint_text.isdigit() else 0
    entry = latest_numbered(store, conn, "control", RUN_PREFIX, min(hint, 2**62))
    if entry is None:
        return None
    r = entry.record
    try:
        return LastRun(int(r["run"]), int(r["checked"]), str(r["rules"]),
                       int(r["findings"]["count"]), str(r["findings"]["digest"]))
    except (KeyError, TypeError, ValueError) as e:
        raise IntegrityError(f"control record {entry.record_id} (entry {entry.seq}) is not a "
                             f"reconciliation record as bfa writes it: {e}") from e


def record_run(store: Store, conn: Connection, last: LastRun | None, *, mode: str,
               checked: int, rules: str, digest: FindingsDigest,
               mismatch: str | None, who: Actor | None = None) -> dict[str, Any]:
    """Append this run's ``control.reconcile`` record (in the run's writer transaction)."""
    run = (last.run if last else 0) + 1
    rec: dict[str, Any] = {
        "type": "control.reconcile", "id": f"{RUN_PREFIX}{run}", "run": run,
        **(who.members() if who is not None else {}), "mode": mode,
        "checked": checked, "rules": rules,
        "findings": {"count": digest.count, "digest": digest.hexdigest()},
        "at": now_rfc3339(),
    }
    if mismatch is not None:
        rec["mismatch"] = mismatch
    append_control(store, conn, [rec])
    store.set_meta(conn, RUN_HINT_KEY, str(run))
    return rec




def mismatch(last: LastRun | None, stored: FindingsDigest, consequence: str) -> str | None:
    """Why stored findings with digest ``stored`` cannot be trusted after ``last``, or None
    (also before the first recorded run); ``consequence`` ends the message."""
    if last is None or (stored.count == last.findings and stored.hexdigest() == last.digest):
        return None
    return (f"the stored findings (rc_findings, {stored.count} rows) are not the "
            f"{last.findings} that reconciliation run {last.run} recorded in the ledger (entry "
            f"{RUN_PREFIX}{last.run}): they were changed outside bfa; {consequence}")


def read_findings(conn: Connection) -> tuple[list[Stored], FindingsDigest]:
    """Every stored finding as stored, and their digest."""
    from sqlalchemy import select

    from reconcile.matching._tables import findings as f

    digest = FindingsDigest()
    out: list[Stored] = []
    for rule, root, pos, row in conn.execute(select(f.c.rule, f.c.root, f.c.pos, f.c.row)):
        item = (str(rule), str(root), int(pos), str(row))
        digest.add(*item)
        out.append(item)
    return out, digest


def check_findings(store: Store, conn: Connection) -> str | None:
    """Why the stored findings differ from what the last run recorded, or None."""
    last = last_run(store, conn)
    if last is None:
        return None
    stored = read_findings(conn)[1]
    if stored.count == 0:  # emptied: the next run keeps nothing and re-checks everything
        return None
    return mismatch(last, stored, "the next 'bfa reconcile' re-checks everything")

__all__ = ["RUN_PREFIX", "FindingsDigest", "LastRun", "Stored", "check_findings", "last_run",
           "mismatch", "read_findings", "record_run"]
