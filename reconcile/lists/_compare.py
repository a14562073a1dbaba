"""``bfa compare``: an outside death list read, pseudonymised and recorded in the ledger.

A list is a CSV file of ``person_id,date`` lines (UTF-8, with or without a byte-order
mark, or GB18030; a header line is optional) from civil affairs or public security.
:func:`read_list` reads it whole and refuses it whole: every line must hold a citizen
identity number (:func:`~reconcile.lists._ids.normalise_id`) and a real date not after
today, else the file is refused naming its lines and fields, and nothing is recorded.

:func:`compare_list` replaces each number by its party pseudonym (FORMAT.md §4: the class
``party``, so it equals the ``person_id`` pseudonym of the person's records) in memory and
appends the list as ``control.compare`` entries in one writer transaction (FORMAT.md §2.5):
the sorted, distinct (pseudonym, date) pairs, at most :data:`PAIRS_PER_ENTRY` per entry,
with the source, the SHA-256 of the file as received, the count and the acting user. The
clear numbers are never stored. Later runs and prechecks read the lists back from the
entries (:func:`comparisons`, :func:`death_list`), each checked against its leaf.
"""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from ledger import (
    BatchRefusedError,
    InputError,
    Ledger,
    LocatedInputError,
    Store,
    append_control,
    control_records,
    now_rfc3339,
    party_pseudonyms,
)
from reconcile.lists._ids import normalise_id
from reconcile.matching import _tables as t
from schemas import N_
from schemas import gettext as _

COMPARE_KINDS = ("death",)
"""The lists ``bfa compare`` takes (``--kind``)."""

PAIRS_PER_ENTRY = 20_000
"""Pairs per ``control.compare`` entry: a list of any length stays in entries of about
1 MB each."""

ENCODINGS = ("auto", "utf-8", "gb18030")
MAX_PROBLEMS = 100
MAX_SOURCE = 128
TZ = ZoneInfo("Asia/Shanghai")
_DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d", "%Y/%m/%d")


class ListRefusedError(BatchRefusedError):
    """A list refused whole: ``problems`` names its lines at fault."""

    def __init__(self, file: str, problems: list[LocatedInputError], more: bool) -> None:
        super().__init__(file, problems, more)
        n = f"{len(problems)}{'+' if more else ''}"
        first = str(problems[0]) if problems else _("unknown problem")
        self.args = (_("{file}: list refused, nothing recorded ({count} line(s) at fault); "
                       "first: {first}").format(file=file, count=n, first=first),)


@dataclass(frozen=True)
class ReadList:
    """A list as read: the distinct (identity number, ISO date) pairs, sorted; how many
    data lines the file had, and the SHA-256 of its bytes."""

    pairs: list[tuple[str, str]]
    lines: int
    digest: str
    encoding: str
    header: bool


@dataclass(frozen=True)
class Compared:
    """What ``bfa compare`` recorded."""

    comparison: str
    """The comparison's id: its entries are ``compare-<comparison>-<k>``."""
    kind: str
    source: str
    digest: str
    lines: int
    count: int
    """Distinct (person, date) pairs recorded."""
    persons: int
    """Distinct persons on the list."""
    known: int
    """Of them, persons the ledger's business records name (approvals, terminations,
    enrolments, certifications, payments, assessments)."""
    seqs: list[int]
    encoding: str
    already: bool = False
    """The same file (its SHA-256) was compared for this kind before: nothing recorded;
    ``comparison`` and ``seqs`` are the earlier comparison's."""

    def to_json(self) -> dict[str, Any]:
        return {"comparison": self.comparison, "kind": self.kind, "source": self.source,
                "digest": self.digest, "lines": self.lines, "count": self.count,
                "persons": self.persons, "known": self.known, "entries": self.seqs,
                "encoding": self.encoding, "already": self.already}


@dataclass
class Comparison:
    """One recorded comparison, read back from its entries."""

    comparison: str
    kind: str
    source: str
    digest: str
    user: str
    at: str
    count: int
    seqs: list[int] = field(default_factory=list)
    pairs: list[tuple[str, str]] = field(default_factory=list)


def _decode(path: Path, data: bytes, encoding: str) -> tuple[str, str]:
    if encoding not in ENCODINGS:
        raise InputError(_("--encoding: {value}; one of {allowed}").format(
            value=encoding, allowed=", ".join(ENCODINGS)))
    tries = ("utf-8", "gb18030") if encoding == "auto" else (encoding,)
    for enc in tries:
        try:
            text = data.decode("utf-8-sig" if enc == "utf-8" else enc)
        except UnicodeDecodeError as e:
            if enc == tries[-1]:
                line = data[:e.start].count(b"\n") + 1
                raise LocatedInputError.of(
                    str(path), line, "", N_("not {encoding} text (byte {byte} of the file); "
                                            "give --encoding"),
                    encoding=enc.upper(), byte=e.start + 1) from e
            continue
        return text, enc
    raise AssertionError("unreachable")


def _day(text: str) -> date | None:
    s = text.strip()
    for fmt in _DATE_FORMATS:
        try:
            d = datetime.strptime(s, fmt).date()
        except ValueError:
            continue
        if len(s) == len(d.strftime(fmt)):  # no unpadded month or day (2026-1-5)
            return d
    return None


def _is_header(row: list[str]) -> bool:
    """A first line of two cells that hold no identity number and no date."""
    return len(row) == 2 and normalise_id(row[0]) is None and _day(row[1]) is None


EARLIEST = date(1900, 1, 1)
"""No date of death before this is taken (a mistyped year would move it by decades)."""


def _birth(pid: str) -> date | None:
    """The date of birth an 18-character number holds (characters 7 to 14), if real."""
    try:
        return datetime.strptime(pid[6:14], "%Y%m%d").date()
    except ValueError:
        return None


_SEPARATORS = {"\t": N_("a tab"), ";": "';'", "；": "'；'", "，": "'，'", "|": "'|'",
               " ": N_("a space")}


def read_list(path: Path, encoding: str = "auto", today: date | None = None) -> ReadList:
    """Read a death list (see the module docstring); :class:`BatchRefusedError` names the
    first :data:`MAX_PROBLEMS` lines at fault."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(_("{path}: cannot read the list: {error}").format(
            path=path, error=e.strerror or e)) from e
    text, used = _decode(path, data, encoding)
    today = today or datetime.now(TZ).date()
    name = str(path)
    problems: list[LocatedInputError] = []
    pairs: set[tuple[str, str]] = set()
    lines = 0
    header = False
    for n, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
        if not row or all(not c.strip() for c in row):
            continue
        if n == 1 and _is_header(row):
            header = True
            continue
        lines += 1
        if len(row) != 2:
            sep = next((k for k in _SEPARATORS if len(row) == 1 and k in row[0].strip()), None)
            problems.append(
                LocatedInputError.of(name, n, "", N_("one column: the values are separated by "
                                                     "{separator}, not a comma"),
                                     separator=_(_SEPARATORS[sep])) if sep is not None else
                LocatedInputError.of(name, n, "", N_("{count} columns; a line is "
                                                     "person_id,date"), count=len(row)))
        else:
            pid, day = normalise_id(row[0]), _day(row[1])
            if pid is None:
                problems.append(LocatedInputError.of(
                    name, n, "person_id", N_("not a citizen identity number (18 characters, "
                                             "the last a digit or X; or 15 digits)")))
            if day is None:
                problems.append(LocatedInputError.of(
                    name, n, "date", N_("not a date (YYYY-MM-DD, YYYYMMDD or YYYY/MM/DD)")))
            elif day > today:
                problems.append(LocatedInputError.of(
                    name, n, "date", N_("{date} is after today ({today})"),
                    date=day.isoformat(), today=today.isoformat()))
            elif day < EARLIEST:
                problems.append(LocatedInputError.of(
                    name, n, "date", N_("{date} is before 1900"), date=day.isoformat()))
            elif pid is not None and (born := _birth(pid)) is not None and day < born:
                problems.append(LocatedInputError.of(
                    name, n, "date", N_("{date} is before the date of birth in the identity "
                                        "number ({born})"),
                    date=day.isoformat(), born=born.isoformat()))
            elif pid is not None:
                pairs.add((pid, day.isoformat()))
        if len(problems) > MAX_PROBLEMS:
            break
    if problems:
        raise ListRefusedError(name, problems[:MAX_PROBLEMS], len(problems) > MAX_PROBLEMS)
    if not pairs:
        raise InputError(_("{path}: the list holds no line; nothing was recorded").format(
            path=path))
    return ReadList(sorted(pairs), lines, hashlib.sha256(data).hexdigest(), used, header)


def _source(source: str | None, path: Path) -> str:
    s = (source if source is not None else path.name).strip()
    if not s or len(s) > MAX_SOURCE or not s.isprintable():
        raise InputError(_("--source: {value!r}: a name of 1 to {limit} printable "
                           "characters").format(value=s, limit=MAX_SOURCE))
    return s


def _known(conn: Connection, persons: list[str]) -> int:
    """How many of ``persons`` (pseudonyms) the derived tables index."""
    p, e = t.person_events.c, t.events.c
    found: set[str] = set()
    for i in range(0, len(persons), 500):
        chunk = persons[i:i + 500]
        found.update(str(x) for x in conn.execute(
            select(p.person).where(p.person.in_(chunk)).distinct()).scalars())
        found.update(str(x) for x in conn.execute(
            select(e.person).where(e.person.in_(chunk)).distinct()).scalars())
    return len(found)


def compare_list(ledger: Ledger, path: Path, *, kind: str = "death", source: str | None = None,
                 encoding: str = "auto", label: str | None = None,
                 today: date | None = None) -> Compared:
    """Read the list at ``path``, pseudonymise it and record it (module docstring)."""
    if kind not in COMPARE_KINDS:
        raise InputError(_("--kind: {value}; one of {allowed}").format(
            value=kind, allowed=", ".join(COMPARE_KINDS)))
    src = _source(source, path)
    got = read_list(path, encoding, today)
    who = ledger.actor(label)
    pseudonym = party_pseudonyms(ledger)
    pairs = sorted({(pseudonym(pid), day) for pid, day in got.pairs})
    persons = sorted({p for p, _d in pairs})
    comparison = str(uuid.uuid4())
    parts = [pairs[i:i + PAIRS_PER_ENTRY] for i in range(0, len(pairs), PAIRS_PER_ENTRY)]
    at = now_rfc3339()
    records = [{"type": "control.compare", "id": f"compare-{comparison}-{k}",
                **who.members(), "kind": kind, "source": src, "digest": got.digest,
                "lines": got.lines, "count": len(pairs), "part": k, "parts": len(parts),
                "pairs": [[p, d] for p, d in part], "at": at}
               for k, part in enumerate(parts, start=1)]
    with ledger.store.writer() as conn:
        known = _known(conn, persons)
        for c in comparisons(conn, kind, pairs=False):
            if c.digest == got.digest:  # a re-send: recorded already, as ingest does
                return Compared(c.comparison, kind, c.source, got.digest, got.lines,
                                len(pairs), len(persons), known, c.seqs, got.encoding, True)
        seqs = append_control(ledger.store, conn, records)
    return Compared(comparison, kind, src, got.digest, got.lines, len(pairs), len(persons),
                    known, list(seqs), got.encoding)


def _comparison_id(rec: dict[str, Any]) -> str | None:
    rid = rec.get("id")
    if not isinstance(rid, str) or not rid.startswith("compare-") or "-" not in rid[8:]:
        return None
    return rid[8:].rsplit("-", 1)[0]


def comparisons(conn: Connection, kind: str | None = None, *, pairs: bool = True
                ) -> Iterator[Comparison]:
    """The comparisons the ledger records (of ``kind``, when given), oldest first, read
    from their ``control.compare`` entries (each checked against its leaf); ``pairs``:
    with their pairs. A record that is not one bfa writes is skipped (its pairs would be
    read by nothing else either)."""
    found: dict[str, Comparison] = {}
    for seq, rec in control_records(conn, "compare"):
        cid = _comparison_id(rec)
        if cid is None or (kind is not None and rec.get("kind") != kind):
            continue
        c = found.get(cid)
        if c is None:
            c = found[cid] = Comparison(cid, str(rec.get("kind")), str(rec.get("source", "")),
                                        str(rec.get("digest", "")), str(rec.get("user", "")),
                                        str(rec.get("at", "")), int(rec.get("count") or 0))
        c.seqs.append(seq)
        if pairs:
            for pair in rec.get("pairs") or ():
                if (isinstance(pair, list) and len(pair) == 2
                        and all(isinstance(x, str) for x in pair)):
                    c.pairs.append((pair[0], pair[1]))
    yield from found.values()


class Death(NamedTuple):
    """A person's date of death: the earliest any compared list gives, and that list."""

    day: date
    source: str
    entry: int
    """The first entry of the comparison that gives it."""


def deaths(conn: Connection, since: int | None = None) -> tuple[dict[str, Death], set[str]]:
    """Every person on a compared death list (party pseudonym -> :class:`Death`), and
    those on a list with an entry at or after ``since`` (none when None)."""
    out: dict[str, Death] = {}
    fresh: set[str] = set()
    for c in comparisons(conn, "death"):
        new = since is not None and max(c.seqs) >= since
        for person, day in c.pairs:
            try:
                d = date.fromisoformat(day)
            except ValueError:
                continue
            if person not in out or d < out[person].day:
                out[person] = Death(d, c.source, min(c.seqs))
            if new:
                fresh.add(person)
    return out, fresh


def death_list(store: Store, conn: Connection) -> dict[str, int]:
    """Every person on a compared death list: party pseudonym -> the epoch day (days since
    1970-01-01) of the earliest date of death any list gives (:func:`deaths`)."""
    del store  # the entries are read through the connection; kept for callers' symmetry
    epoch = date(1970, 1, 1)
    return {p: (d.day - epoch).days for p, d in deaths(conn)[0].items()}


__all__ = ["COMPARE_KINDS", "PAIRS_PER_ENTRY", "Compared", "Comparison", "Death",
           "ListRefusedError", "ReadList", "compare_list", "comparisons", "death_list",
           "deaths", "read_list"]
