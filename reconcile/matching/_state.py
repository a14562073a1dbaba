"""What a reconciliation run leaves in the ledger: the ``control.reconcile`` record.

The stored findings (``rc_findings``) and the run's watermark let the next run re-check
only what changed (ADR 0014). The application role may write them (FORMAT.md §8.3), so a
run does not take them on trust: it records, as a ``control.reconcile`` entry, the
watermark it covered, the digest of the rules, and a digest of the findings it left
stored (:func:`findings_digest`); the next run reads that entry back
from the ledger (``latest_numbered``: no stored pointer is believed) and checks the
stored findings against it before it keeps any of them. A mismatch is a
``LEDGER_INTEGRITY`` break and the run re-checks everything (FORMAT.md §2.5, §8.3).

The digest (scheme ``sorted-sha256``) is SHA-256 over every stored finding in one
canonical order, rule, root and position (code points, then the number), each framed as
``rule NUL root NUL pos NUL row LF``; a row with one more NUL or LF than its frame (bfa
writes none: roots are decimal or ``person|insurance|period``, rows compact JSON) can
only have been written by someone else and is a mismatch. The run reads the stored
findings anyway (their rows are judged every night), in that order from an index, so the
check costs one hash update per row and no sort; the digest of what a run leaves is taken
over the kept and the new findings, which the run sorts anyway to judge them. Records
written before this scheme (no ``scheme`` member) carry the older additive digest, which
:func:`legacy_digest` still checks once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from ledger import Actor, IntegrityError, Store, append_control, latest_numbered, now_rfc3339
from schemas import gettext as _

RUN_PREFIX = "reconcile-"
"""Record ids of runs: ``reconcile-1``, ``reconcile-2``, … (a series without gaps)."""

RUN_HINT_KEY = "reconcile_run"
"""``meta`` key holding the number of the last run: only where the search starts."""

Stored = tuple[str, str, int, str]
"""A finding as stored: rule, root, position, the row's JSON text."""

SCHEME = "sorted-sha256"
"""The findings digest of records this version writes (FORMAT.md §2.5)."""

_CHUNK = 4096


@dataclass(frozen=True, slots=True)
class Digest:
    """The number of stored findings and their digest (hex), as a record states them."""

    count: int
    digest: str


def findings_digest(rows: Sequence[Stored]) -> Digest:
    """The digest of ``rows``, which must be in canonical order (rule, root, position:
    ``sorted`` gives it). A rule, root or row holding a NUL or a newline (bfa writes
    none) makes the digest ``"invalid"``, which no record holds."""
    h = hashlib.sha256()
    for i in range(0, len(rows), _CHUNK):
        part = rows[i:i + _CHUNK]
        text = "".join([f"{a}\x00{b}\x00{c}\x00{d}\n" for a, b, c, d in part])
        if text.count("\n") != len(part) or text.count("\x00") != 3 * len(part):
            return Digest(len(rows), "invalid")
        h.update(text.encode())
    return Digest(len(rows), h.hexdigest())


def ids_digest(ids: Iterable[str]) -> Digest:
    """The digest of a set of break ids (FORMAT.md §2.5): SHA-256 of the ids sorted by code
    point, each followed by a newline."""
    ordered = sorted(set(ids))
    return Digest(len(ordered), hashlib.sha256(
        "".join(f"{i}\n" for i in ordered).encode()).hexdigest())


def legacy_digest(rows: Sequence[Stored]) -> Digest:
    """The additive digest of records without ``scheme`` (bfa before the sorted scheme):
    the sum modulo 2^2048 of SHAKE-256 (256 bytes) of ``rule NUL root NUL pos NUL row``,
    hashed with SHA-256 (FORMAT.md §2.5)."""
    total = 0
    for rule, root, pos, row in rows:
        material = f"{rule}\x00{root}\x00{pos}\x00{row}".encode()
        total += int.from_bytes(hashlib.shake_256(material).digest(256), "big")
    mask = (1 << 2048) - 1
    return Digest(len(rows), hashlib.sha256((total & mask).to_bytes(256, "big")).hexdigest())


@dataclass(frozen=True, slots=True)
class LastRun:
    """What the last ``control.reconcile`` entry says."""

    run: int
    checked: int
    """The stored findings cover the records with ``seq`` below this."""
    rules: str
    findings: int
    digest: str
    scheme: str
    """``sorted-sha256``, or ``additive`` for a record without ``scheme``."""
    seq: int = -1
    """The record's own entry."""
    user: str | None = None
    """The identity that ran it."""
    as_of: str | None = None
    """The day the last tracked run judged by (``YYYY-MM-DD``), carried by later runs that
    track nothing; None before runs recorded it."""
    breaks: Digest | None = None
    """The breaks the run left present in the workflow (a tracked run: ``bfa reconcile``,
    ``bfa nightly``), or None (a run whose breaks were not recorded)."""

    def digest_of(self, rows: Sequence[Stored]) -> Digest:
        """The digest of ``rows`` (canonical order) by this record's scheme."""
        return legacy_digest(rows) if self.scheme == "additive" else findings_digest(rows)


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
        b = r.get("breaks")
        return LastRun(int(r["run"]), int(r["checked"]), str(r["rules"]),
                       int(r["findings"]["count"]), str(r["findings"]["digest"]),
                       str(r["findings"].get("scheme", "additive")), entry.seq,
                       str(r["user"]) if isinstance(r.get("user"), str) else None,
                       str(r["as_of"]) if isinstance(r.get("as_of"), str) else None,
                       None if b is None else Digest(int(b["count"]), str(b["digest"])))
    except (KeyError, TypeError, ValueError) as e:
        raise IntegrityError(_("control record {record} (entry {seq}) is not a "
                               "reconciliation record as bfa writes it: {error}").format(
            record=entry.record_id, seq=entry.seq, error=e)) from e


def record_run(store: Store, conn: Connection, last: LastRun | None, *, mode: str,
               checked: int, rules: str, digest: Digest,
               mismatch: str | None, who: Actor | None = None,
               breaks: Digest | None = None, as_of: str | None = None) -> dict[str, Any]:
    """Append this run's ``control.reconcile`` record (in the run's writer transaction);
    ``breaks``: the digest of the break ids a tracked run left present. A run that does
    not track (a look back, a bundle's reconciliation) leaves the workflow as it was, so
    its record repeats the last run's digest: the check of the workflow table against it
    (``present_mismatch``) keeps its reference (FORMAT.md §2.5)."""
    run = (last.run if last else 0) + 1
    if breaks is None and last is not None:
        breaks = last.breaks
    if as_of is None and last is not None:
        as_of = last.as_of
    rec: dict[str, Any] = {
        "type": "control.reconcile", "id": f"{RUN_PREFIX}{run}", "run": run,
        **(who.members() if who is not None else {}), "mode": mode,
        "checked": checked, "rules": rules,
        "findings": {"count": digest.count, "digest": digest.digest, "scheme": SCHEME},
        "at": now_rfc3339(),
    }
    if breaks is not None:
        rec["breaks"] = {"count": breaks.count, "digest": breaks.digest}
    if as_of is not None:
        rec["as_of"] = as_of
    if mismatch is not None:
        rec["mismatch"] = mismatch
    append_control(store, conn, [rec])
    store.set_meta(conn, RUN_HINT_KEY, str(run))
    return rec




def mismatch(last: LastRun | None, stored: Sequence[Stored], consequence: str) -> str | None:
    """Why the stored findings ``stored`` (canonical order) cannot be trusted after
    ``last``, or None (also before the first recorded run); ``consequence`` ends the
    message."""
    if last is None:
        return None
    if last.checked > last.seq:  # bfa records the watermark it matched, below its entry
        return (f"reconciliation run {last.run} (entry {RUN_PREFIX}{last.run}, seq "
                f"{last.seq}) says its findings cover the records below {last.checked}, "
                f"beyond its own entry: bfa did not write it; {consequence}")
    if len(stored) == last.findings and last.digest_of(stored).digest == last.digest:
        return None
    return (f"the stored findings (rc_findings, {len(stored)} rows) are not the "
            f"{last.findings} that reconciliation run {last.run} recorded in the ledger (entry "
            f"{RUN_PREFIX}{last.run}): they were changed outside bfa; {consequence}")


def read_findings(conn: Connection) -> list[Stored]:
    """Every stored finding as stored, in canonical order (rule, root by code point — the
    ``C`` collation on PostgreSQL, SQLite's binary one — then position)."""
    from sqlalchemy import select

    from reconcile.matching._tables import findings as f

    order = [Store.code_point_order(conn, f.c.rule), Store.code_point_order(conn, f.c.root),
             f.c.pos]
    return [(str(rule), str(root), int(pos), str(row)) for rule, root, pos, row
            in conn.execute(select(f.c.rule, f.c.root, f.c.pos, f.c.row).order_by(*order))]


def check_findings(store: Store, conn: Connection) -> str | None:
    """Why the stored findings differ from what the last run recorded, or None."""
    last = last_run(store, conn)
    if last is None:
        return None
    stored = read_findings(conn)
    if not stored:  # emptied: the next run keeps nothing and re-checks everything
        return None
    return mismatch(last, stored, "the next 'bfa reconcile' re-checks everything")


__all__ = ["RUN_PREFIX", "SCHEME", "Digest", "LastRun", "Stored", "check_findings",
           "findings_digest", "ids_digest", "last_run", "legacy_digest", "mismatch",
           "read_findings", "record_run"]
