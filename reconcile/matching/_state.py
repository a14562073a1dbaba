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
the same way, reading back what it stored, in the order the judge reads it: no finding is
held in memory (bundle verify and the nightly stay flat as findings grow). Records
written before this scheme (no ``scheme`` member) carry the older additive digest, which
:func:`legacy_digest` still checks once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from sqlalchemy import Connection

from ledger import (
    Actor,
    IntegrityError,
    Store,
    append_control,
    control_records,
    latest_numbered,
    now_rfc3339,
    read_entries,
)
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


def findings_digest(rows: Iterable[Stored]) -> Digest:
    """The digest of ``rows``, which must be in canonical order (rule, root, position:
    ``sorted`` gives it), read once as a stream. A rule, root or row holding a NUL or a
    newline (bfa writes none) makes the digest ``"invalid"``, which no record holds."""
    h = hashlib.sha256()
    n = 0
    valid = True
    it = iter(rows)
    while part := list(islice(it, _CHUNK)):
        n += len(part)
        if not valid:
            continue
        text = "".join([f"{a}\x00{b}\x00{c}\x00{d}\n" for a, b, c, d in part])
        if text.count("\n") != len(part) or text.count("\x00") != 3 * len(part):
            valid = False
            continue
        h.update(text.encode())
    return Digest(n, h.hexdigest() if valid else "invalid")


def ids_digest(ids: Iterable[str]) -> Digest:
    """The digest of a set of break ids (FORMAT.md §2.5): SHA-256 of the ids sorted by code
    point, each followed by a newline."""
    ordered = sorted(set(ids))
    return Digest(len(ordered), hashlib.sha256(
        "".join(f"{i}\n" for i in ordered).encode()).hexdigest())


def legacy_digest(rows: Iterable[Stored]) -> Digest:
    """The additive digest of records without ``scheme`` (bfa before the sorted scheme):
    the sum modulo 2^2048 of SHAKE-256 (256 bytes) of ``rule NUL root NUL pos NUL row``,
    hashed with SHA-256 (FORMAT.md §2.5)."""
    total = n = 0
    for rule, root, pos, row in rows:
        n += 1
        material = f"{rule}\x00{root}\x00{pos}\x00{row}".encode()
        total += int.from_bytes(hashlib.shake_256(material).digest(256), "big")
    mask = (1 << 2048) - 1
    return Digest(n, hashlib.sha256((total & mask).to_bytes(256, "big")).hexdigest())


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
    state: Digest | None = None
    """The matching state the run left (``rc_open``, ``rc_matched``, ``rc_month_sums``:
    :func:`state_digest`), or None (a run before it was recorded)."""
    derived: tuple[int, int] | None = None
    """``(start, length)`` of the last nightly's slice of the derived tables' check
    (FORMAT.md §6.7), carried by later runs; None before the first."""

    def digest_of(self, rows: Iterable[Stored]) -> Digest:
        """The digest of ``rows`` (canonical order, read once) by this record's scheme."""
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
        b, st, dv = r.get("breaks"), r.get("state"), r.get("derived")
        return LastRun(int(r["run"]), int(r["checked"]), str(r["rules"]),
                       int(r["findings"]["count"]), str(r["findings"]["digest"]),
                       str(r["findings"].get("scheme", "additive")), entry.seq,
                       str(r["user"]) if isinstance(r.get("user"), str) else None,
                       str(r["as_of"]) if isinstance(r.get("as_of"), str) else None,
                       None if b is None else Digest(int(b["count"]), str(b["digest"])),
                       None if st is None else Digest(int(st["count"]), str(st["digest"])),
                       None if dv is None else (int(dv["start"]), int(dv["length"])))
    except (KeyError, TypeError, ValueError) as e:
        raise IntegrityError(_("control record {record} (entry {seq}) is not a "
                               "reconciliation record as bfa writes it: {error}").format(
            record=entry.record_id, seq=entry.seq, error=e)) from e


def record_run(store: Store, conn: Connection, last: LastRun | None, *, mode: str,
               checked: int, rules: str, digest: Digest,
               mismatch: str | None, who: Actor | None = None,
               breaks: Digest | None = None, as_of: str | None = None,
               state: Digest | None = None,
               derived: tuple[int, int] | None = None) -> dict[str, Any]:
    """Append this run's ``control.reconcile`` record (in the run's writer transaction);
    ``breaks``: the digest of the break ids a tracked run left present. A run that does
    not track (a look back, a bundle's reconciliation) leaves the workflow as it was, so
    its record repeats the last run's digest: the check of the workflow table against it
    (``present_mismatch``) keeps its reference (FORMAT.md §2.5). ``state``: the digest of
    the matching state the run left (:func:`state_digest`); ``derived``: the slice of the
    derived tables a nightly checked, else the last record's is repeated."""
    run = (last.run if last else 0) + 1
    if breaks is None and last is not None:
        breaks = last.breaks
    if as_of is None and last is not None:
        as_of = last.as_of
    if derived is None and last is not None:
        derived = last.derived
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
    if state is not None:
        rec["state"] = {"count": state.count, "digest": state.digest}
    if derived is not None:
        rec["derived"] = {"start": derived[0], "length": derived[1]}
    if mismatch is not None:
        rec["mismatch"] = mismatch
    append_control(store, conn, [rec])
    store.set_meta(conn, RUN_HINT_KEY, str(run))
    return rec




RULES_PREFIX = "rules-"
"""Record ids of the rules runs used: ``rules-`` and the rules digest (FORMAT.md §2.5)."""


def described_digest(described: dict[str, Any]) -> str:
    """The digest of rules described as JSON-ready data (FORMAT.md §2.5, ``control.rules``):
    hex SHA-256 of their JSON with sorted keys, no whitespace and non-ASCII escaped."""
    body = json.dumps(described, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(body.encode()).hexdigest()


def rules_record_problem(seq: int, record: dict[str, Any]) -> str | None:
    """Why a ``control.rules`` record is not one bfa wrote (its ``digest`` is not the digest
    of its ``rules``, or its id does not name that digest), or None. A record planted ahead
    of a run under the digest of the rules it will use, with other content, would make the
    ledger name rules the run did not use (FORMAT.md §2.5, §6.7)."""
    digest, rules = record.get("digest"), record.get("rules")
    if not isinstance(digest, str) or not isinstance(rules, dict):
        return _("control record {record} (entry {seq}) is not a rules record as bfa writes "
                 "it: it lacks its digest or its rules").format(record=record.get("id"),
                                                                 seq=seq)
    if described_digest(rules) != digest:
        return _("control record {record} (entry {seq}): the rules it holds do not have the "
                 "digest it states; bfa did not write it").format(record=record.get("id"),
                                                                  seq=seq)
    if record.get("id") != f"{RULES_PREFIX}{digest}":
        return _("control record {record} (entry {seq}): its id does not name the digest it "
                 "states; bfa did not write it").format(record=record.get("id"), seq=seq)
    return None


def record_rules(store: Store, conn: Connection, digest: str, described: dict[str, Any],
                 ruleset: str, who: Actor | None = None) -> int | None:
    """Append the ``control.rules`` record of the rules with this digest (their content,
    the rule set's name, who used them first), in the run's writer transaction, unless
    the ledger holds it already; returns its ``seq``, or None when it was there. A run's
    ``control.reconcile`` names the digest, so every report can be traced to the rules
    it was made with, and a widened tolerance shows as a new record.

    A record already there is read back from its entry and must hold these rules: one
    planted under their digest with other content is an :class:`IntegrityError` (the run
    stops; ``bfa verify`` names it too)."""
    rid = f"{RULES_PREFIX}{digest}"
    found = read_entries(store, conn, "control", [rid]).get(rid)
    if found is not None:
        why = rules_record_problem(found.seq, found.record)
        if why is not None:
            raise IntegrityError(why)
        return None
    rec: dict[str, Any] = {"type": "control.rules", "id": rid,
                           **(who.members() if who is not None else {}),
                           "digest": digest, "ruleset": ruleset, "rules": described,
                           "at": now_rfc3339()}
    return append_control(store, conn, [rec])[0]


def check_rules_records(conn: Connection) -> list[tuple[int, str]]:
    """``(seq, why)`` for every ``control.rules`` entry bfa did not write
    (:func:`rules_record_problem`); there is one per rules digest ever used, so few."""
    out = []
    for seq, record in control_records(conn, "rules"):
        why = rules_record_problem(seq, record)
        if why is not None:
            out.append((seq, why))
    return out


def mismatch(last: LastRun | None, stored: Iterable[Stored], consequence: str) -> str | None:
    """Why the stored findings ``stored`` (canonical order, read once as a stream) cannot
    be trusted after ``last``, or None (also before the first recorded run);
    ``consequence`` ends the message."""
    if last is None:
        return None
    if last.checked > last.seq:  # bfa records the watermark it matched, below its entry
        return (f"reconciliation run {last.run} (entry {RUN_PREFIX}{last.run}, seq "
                f"{last.seq}) says its findings cover the records below {last.checked}, "
                f"beyond its own entry: bfa did not write it; {consequence}")
    got = last.digest_of(stored)
    if got.count == last.findings and got.digest == last.digest:
        return None
    return (f"the stored findings (rc_findings, {got.count} rows) are not the "
            f"{last.findings} that reconciliation run {last.run} recorded in the ledger (entry "
            f"{RUN_PREFIX}{last.run}): they were changed outside bfa; {consequence}")


def read_findings(conn: Connection, rule: str | None = None) -> Iterator[Stored]:
    """Every stored finding (of ``rule``, when given) as stored, in canonical order (rule,
    root by code point — the ``C`` collation on PostgreSQL, SQLite's binary one — then
    position), streamed from the database in parts: none is held here."""
    from sqlalchemy import select

    from reconcile.matching._tables import findings as f

    order = [Store.code_point_order(conn, f.c.rule), Store.code_point_order(conn, f.c.root),
             f.c.pos]
    q = select(f.c.rule, f.c.root, f.c.pos, f.c.row).order_by(*order)
    if rule is not None:
        q = q.where(f.c.rule == rule)
    for r, root, pos, row in conn.execute(q.execution_options(yield_per=_CHUNK)):
        yield str(r), str(root), int(pos), str(row)


def findings_empty(conn: Connection) -> bool:
    """Whether ``rc_findings`` holds no row."""
    from sqlalchemy import select

    from reconcile.matching._tables import findings as f

    return conn.execute(select(f.c.rule).limit(1)).first() is None


def own_rotation(store: Store, conn: Connection, last: LastRun | None,
                 identity: str) -> tuple[int, int] | None:
    """The derived-check slice (``derived``) of the latest ``control.reconcile`` record that
    ``identity`` (the nightly's) wrote, found by entry, newest first, whatever its run
    number; None without one. Records of other identities are passed over: a role that
    may append ``control.reconcile`` records by hand (the officer duty) cannot choose
    where the nightly's next slice starts, however many it appends or however it numbers
    them (FORMAT.md §8.3)."""
    if last is None:
        return None
    if last.user == identity:
        return last.derived
    for _seq, record in control_records(conn, "reconcile", newest_first=True):
        if record.get("user") != identity:
            continue
        dv = record.get("derived")
        try:
            return None if dv is None else (int(dv["start"]), int(dv["length"]))
        except (KeyError, TypeError, ValueError):
            return None
    return None


def state_digest(conn: Connection) -> Digest:
    """The matching state a run leaves for the next (FORMAT.md §2.5 ``state``): SHA-256
    over the rows of ``rc_open`` by ``seq``, framed ``open NUL seq LF``, then
    ``rc_matched`` by ``m_seq`` (``matched NUL m_seq NUL e_seq NUL amount_fen LF``), then
    ``rc_month_sums`` by ``month`` in code point order (``month NUL month NUL in_fen NUL
    out_fen NUL n LF``), numbers in decimal; the count is the number of rows. A month
    holding a NUL or LF (bfa writes none) makes the digest ``"invalid"``."""
    from sqlalchemy import select

    from reconcile.matching._tables import matched, month_sums, open_events

    h = hashlib.sha256()
    n = 0
    o, m, ms = open_events.c, matched.c, month_sums.c
    for (seq,) in conn.execute(select(o.seq).order_by(o.seq)):
        h.update(f"open\x00{seq}\n".encode())
        n += 1
    for a, b, amount in conn.execute(select(m.m_seq, m.e_seq, m.amount_fen).order_by(m.m_seq)):
        h.update(f"matched\x00{a}\x00{b}\x00{amount}\n".encode())
        n += 1
    bad = False
    for month, i, out, k in conn.execute(select(ms.month, ms.in_fen, ms.out_fen, ms.n).order_by(
            Store.code_point_order(conn, ms.month))):
        bad = bad or "\x00" in str(month) or "\n" in str(month)
        h.update(f"month\x00{month}\x00{i}\x00{out}\x00{k}\n".encode())
        n += 1
    return Digest(n, "invalid" if bad else h.hexdigest())


def emptied(last: LastRun | None, conn: Connection, findings_empty: bool) -> bool:
    """Whether the stored state was emptied since ``last`` (a migration or a rebuild that
    empties the derived tables): ``rc_findings`` empty though the run left findings, or
    every state table empty with ``rc_findings`` though the run left rows there. Then
    nothing stored is kept and the next run re-checks everything, so nothing stored is
    checked against ``last`` either."""
    if last is None or not findings_empty:
        return False
    if last.findings:
        return True
    if last.state is None or not last.state.count:
        return False
    from sqlalchemy import select

    from reconcile.matching._tables import matched, month_sums, open_events

    return all(conn.execute(select(*table.primary_key.columns).limit(1)).first() is None
               for table in (open_events, matched, month_sums))


def state_base(store: Store, conn: Connection) -> LastRun | None:
    """The last run whose stored state (findings, matching state, ``rc_dirty``) the next
    run would keep, or None (no run yet, or emptied since)."""
    last = last_run(store, conn)
    return None if last is None or emptied(last, conn, findings_empty(conn)) else last


def state_mismatch(last: LastRun, now: Digest, consequence: str) -> str | None:
    """Why the matching state differs from what ``last`` recorded, or None."""
    if last.state is None or now == last.state:
        return None
    return ("the matching state (rc_open, rc_matched, rc_month_sums: {rows} rows) is not "
             "the {recorded} rows that reconciliation run {run} recorded in the ledger (entry "
             "{entry}): it was changed outside bfa; {consequence}").format(
        rows=now.count, recorded=last.state.count, run=last.run,
        entry=f"{RUN_PREFIX}{last.run}", consequence=consequence)


def check_state(store: Store, conn: Connection) -> str | None:
    """Why the matching state differs from the last run's record, or None (also when the
    next run keeps nothing)."""
    base = state_base(store, conn)
    if base is None:
        return None
    return state_mismatch(base, state_digest(conn),
                          "the next 'bfa reconcile' re-checks everything")


def check_findings(store: Store, conn: Connection) -> str | None:
    """Why the stored findings differ from what the last run recorded, or None."""
    last = last_run(store, conn)
    if last is None:
        return None
    if findings_empty(conn):  # emptied: the next run keeps nothing and re-checks everything
        return None
    return mismatch(last, read_findings(conn), "the next 'bfa reconcile' re-checks everything")


__all__ = [
    "RULES_PREFIX",
    "RUN_PREFIX",
    "SCHEME",
    "Digest",
    "LastRun",
    "Stored",
    "check_findings",
    "check_rules_records",
    "check_state",
    "described_digest",
    "emptied",
    "findings_digest",
    "findings_empty",
    "ids_digest",
    "last_run",
    "legacy_digest",
    "mismatch",
    "own_rotation",
    "read_findings",
    "record_rules",
    "record_run",
    "rules_record_problem",
    "state_base",
    "state_digest",
    "state_mismatch",
]
