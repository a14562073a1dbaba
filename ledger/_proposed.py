"""Proposed records: a JSON Lines file read and validated the way ingest reads it, its
personal fields turned into pseudonyms, and nothing of it stored.

``bfa precheck`` checks a payment batch before it goes to the bank (INTERCHANGE §12.4).
This module owns the reading: each line is parsed strictly and validated against the
interchange models exactly as :class:`ledger._ingest.Ingester` does (the same parser, the
same models, the same ``file:line: field: message`` problems), must be a
``business.benefit_payment``, and comes out as a :class:`ProposedLine` holding the
pseudonyms of ``person_id`` and ``account`` under the ledger secret (FORMAT.md §4.1) —
never their clear values. The SHA-256 of the file's bytes is taken as it is read.
A line that is plainly a valid payment (no escapes, one member per name, nothing but the
object) is read by a quicker path to the same model's validator, and for the database
straight to its COPY text row; every other line through ingest's reading. Both give the
same rows and the same verdicts (:func:`_valid_payment`), the latter naming the problems.

A file with any bad line is refused whole (:class:`BatchRefusedError`, after every line
was read, the first 100 problems named), so a caller that loads lines as they come does
so inside a transaction it rolls back.

A big file is read by more than one process (:meth:`ProposedFile.parts`, ADR 0037): this
one reads the bytes, takes their SHA-256 and hands blocks of whole lines to worker
processes, which parse, validate and pseudonymise them line by line exactly as
:meth:`ProposedFile.lines` does and give back the rows (or their COPY text) and the
problems with their line numbers; the blocks are taken back in file order, so the rows,
the count and the problems named (the first 100, by line) are the same as read alone.

Example::

    from ledger import ProposedFile
    batch = ProposedFile(Path("batch.jsonl"))
    for line in batch.lines(secret):        # ProposedLine(line=1, record_id="BP-1", …)
        ...
    print(batch.digest, batch.count)
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import IO, NamedTuple

import orjson
from pydantic import ValidationError

from ledger._errors import BatchRefusedError, InputError, LocatedInputError
from ledger._ingest import MAX_REPORTED, parse_line
from ledger._privacy import Pseudonymizer
from ledger._store import copy_text_line
from schemas import N_, BusinessBenefitPayment, current_language, set_language
from schemas import gettext as _

KIND = "business.benefit_payment"
"""The one record type a proposed payment batch holds."""


class ProposedLine(NamedTuple):
    """One valid line of a proposed batch, its personal fields pseudonymised."""

    line: int
    record_id: str
    region: str
    person: str
    """Party pseudonym of ``person_id``."""
    insurance: str
    period: str
    amount_fen: int
    account: str
    """Account pseudonym of ``account``."""
    benefit: str | None
    corrects: str | None


BLOCK = 1 << 20
"""Bytes of whole lines a worker process parses at a time (about 4,000 lines)."""

PARALLEL_FROM = 8 << 20
"""Files smaller than this (about 30,000 lines) are read by this process alone: starting
workers would cost more than they save."""


def default_workers() -> int:
    """Worker processes for a big file: one per processor this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


class Part(NamedTuple):
    """What one block of lines gave: records read, bad lines and the first problems (by
    line), and the rows — :class:`ProposedLine` tuples, or their COPY text
    (:func:`ledger._store.copy_text_line`) — when no line of it was bad."""

    records: int
    bad: int
    problems: list[LocatedInputError]
    rows: list[ProposedLine] | bytes


def _parse_part(pseudo: Pseudonymizer, name: str, first: int, block: bytes,
                as_text: bool) -> Part:
    """Lines ``first``, ``first + 1`` … of ``block`` (whole lines) read as
    :meth:`ProposedFile.lines` reads each."""
    rows: list[ProposedLine] = []
    texts: list[str] = []
    problems: list[LocatedInputError] = []
    bad = records = 0
    raws = block.split(b"\n")  # lines end at LF only, as a file's lines do
    if not raws[-1]:
        raws.pop()
    for n, raw in enumerate(raws, first):
        if as_text:  # nearly every line: straight to its row
            row = _row_text(pseudo, n, raw)
            if row is not None:
                records += 1
                texts.append(row)
                continue
        try:
            line = _parse(pseudo, name, n, raw)
        except LocatedInputError as e:
            bad += 1
            if len(problems) < MAX_REPORTED:
                problems.append(e)
            continue
        if line is not None:
            records += 1
            if as_text:
                texts.append(copy_text_line(line))
            else:
                rows.append(line)
    if bad:
        return Part(records, bad, problems, [])
    if as_text:
        return Part(records, 0, [], "".join(texts).encode())
    return Part(records, 0, [], rows)


_worker_pseudo: Pseudonymizer | None = None
"""A worker process's pseudonymizer (:func:`_start_worker`)."""


def _start_worker(secret: bytes, lang: str) -> None:
    global _worker_pseudo
    # Ctrl-C reaches the whole process group: the command stops the pool and says so
    # once; a worker printing its own KeyboardInterrupt would only add tracebacks
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_pseudo = Pseudonymizer(secret)
    set_language(lang)  # problems are worded as the reader reads them


def _worker_part(name: str, first: int, block: bytes, as_text: bool) -> Part:
    assert _worker_pseudo is not None
    return _parse_part(_worker_pseudo, name, first, block, as_text)


_PAYMENT = BusinessBenefitPayment.__pydantic_validator__
"""The payment model's own validator (:func:`_valid_payment`)."""


def _valid_payment(text: str) -> dict[str, str] | None:
    """The members of the line when it is a valid benefit payment beyond doubt, every
    value a string; None for anything else, which :func:`_parse` then reads as ingest
    does (:func:`ledger._ingest.parse_line`), naming the problem if there is one.

    This is ingest's own quick reading (:func:`ledger._canonical.loads_strict`: orjson,
    taken only where its result provably equals the standard library's) with a cheaper
    proof, then the payment model's validator itself rather than the union's, which
    picks that model for this ``type``; so a line taken here is one ingest takes, with
    the same values. The proof: orjson parses RFC 8259 as strictly as the standard
    library but keeps the last of duplicate member names. With no backslash in the text
    (no escapes: of a quote, of a lone surrogate) every ``"`` delimits a string; every
    member kept is a name and a string value once the model took them (no field of it
    takes a number, ``true``, ``false`` or ``null``; ``withdrawn``, an object, is left to
    ingest's reading, which refuses it), so a text with exactly four ``"`` per member
    kept has no member besides them — each one more would add at least two. Anything
    before the ``{`` or after the ``}`` (a byte-order mark, trailing data) is left to
    ingest's reading too. ``tests/reconcile/test_precheck_rules.py`` compares the two
    readings on lines near these edges."""
    if text[:1] != "{" or text[-1:] != "}" or "\\" in text:
        return None
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if type(obj) is not dict or "withdrawn" in obj or text.count('"') != 4 * len(obj):
        return None
    try:
        _PAYMENT.validate_python(obj)
    except ValidationError:
        return None
    return obj


def _fen(amount: str) -> int:
    """Fen of a valid positive money string (exactly two fraction digits)."""
    return int(amount.replace(".", ""))


NULL = "\\N"
"""NULL in COPY text."""


def _row_text(pseudo: Pseudonymizer, n: int, raw: bytes) -> str | None:
    """Line ``n`` as the COPY text row of its :class:`ProposedLine` when
    :func:`_valid_payment` takes it, else None. None of its values needs an escape
    (:func:`ledger._store.copy_text_line`): the text has no backslash, and the model's
    patterns leave no tab, line end or other control character in any member."""
    try:
        rec = _valid_payment(raw.decode("utf-8").rstrip("\r\n"))
    except UnicodeDecodeError:
        return None
    if rec is None:
        return None
    get = rec.get
    return (f"{n}\t{rec['id']}\t{rec['region']}\t"
            f"{pseudo.pseudonym('person_id', rec['person_id'])}\t{rec['insurance']}\t"
            f"{rec['period']}\t{_fen(rec['amount'])}\t"
            f"{pseudo.pseudonym('account', rec['account'])}\t{get('benefit', NULL)}\t"
            f"{get('corrects', NULL)}\n")


def _parse(pseudo: Pseudonymizer, name: str, n: int, raw: bytes) -> ProposedLine | None:
    """Line ``n`` (its bytes, with or without its line end): None when blank."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise LocatedInputError.of(name, n, "line", N_("not valid UTF-8 at byte {offset}"),
                                   offset=e.start) from e
    text = text.rstrip("\r\n")
    pay = _valid_payment(text)
    if pay is not None:  # nearly every line: the same values
        return ProposedLine(
            n, pay["id"], pay["region"], pseudo.pseudonym("person_id", pay["person_id"]),
            pay["insurance"], pay["period"], _fen(pay["amount"]),
            pseudo.pseudonym("account", pay["account"]), pay.get("benefit"),
            pay.get("corrects"))
    if not text.strip():
        return None
    obj, model = parse_line(name, n, text)
    if model.type != KIND:
        raise LocatedInputError.of(name, n, "type", N_(
            "a payment batch holds benefit payments only ({kind}), not {type}"),
            kind=KIND, type=model.type)
    rec = obj  # valid: the model kept every member as sent
    amount = str(rec["amount"])
    whole, _dot, part = amount.partition(".")
    benefit, corrects = rec.get("benefit"), rec.get("corrects")
    return ProposedLine(
        n, str(rec["id"]), str(rec["region"]),
        pseudo.pseudonym("person_id", str(rec["person_id"])), str(rec["insurance"]),
        str(rec["period"]), int(whole) * 100 + int(part),
        pseudo.pseudonym("account", str(rec["account"])),
        None if benefit is None else str(benefit),
        None if corrects is None else str(corrects))


class ProposedFile:
    """A proposed batch on disk: its lines (:meth:`lines`), the SHA-256 of its bytes
    (:attr:`digest`, once read) and the original text of chosen lines (:meth:`texts`)."""

    def __init__(self, path: Path, progress: Callable[[int], None] | None = None) -> None:
        self.path = path
        self.name = os.fsencode(path).decode("utf-8", "backslashreplace")
        """The file's name as messages and the ledger show it."""
        self.progress = progress
        self.digest = ""
        """Hex SHA-256 of the file's bytes, set when :meth:`lines` has read them all."""
        self.count = 0
        """Records read (lines that are not blank)."""
        self.size = 0
        """Bytes read."""

    def _open(self) -> IO[bytes]:
        try:
            return self.path.open("rb")
        except OSError as e:
            raise InputError(_("{path}: cannot open: {error}").format(
                path=self.name, error=e.strerror)) from e

    def lines(self, secret: bytes) -> Iterator[ProposedLine]:
        """Every record of the file, in order; :class:`BatchRefusedError` at the end when
        any line is bad (nothing the caller did with the lines may stay)."""
        for part in self.parts(secret, workers=0):
            assert isinstance(part, list)
            yield from part

    def parts(self, secret: bytes, *, as_text: bool = False, workers: int | None = None,
              block: int = BLOCK) -> Iterator[list[ProposedLine] | bytes]:
        """The records of the file in order, a block of lines at a time (see
        :meth:`reader`, which this opens and closes)."""
        with self.reader(secret, as_text=as_text, workers=workers, block=block) as parts:
            yield from parts

    def reader(self, secret: bytes, *, as_text: bool = False, workers: int | None = None,
               block: int = BLOCK) -> BlockReader:
        """The records of the file in order, a block of lines at a time: lists of
        :class:`ProposedLine`, or with ``as_text`` their rows in PostgreSQL's COPY text
        format. Nothing more once a line was bad; :class:`BatchRefusedError` at the end
        when any was (the first problems by line, as :meth:`lines` names them).

        ``workers`` processes parse the blocks (None: :func:`default_workers` when the
        file is at least :data:`PARALLEL_FROM` bytes; 0: this process alone). They start
        at once (a context manager: leaving it stops them), so that the caller can do
        other work while they do."""
        if workers is None:
            size = self.path.stat().st_size if self.path.is_file() else 0
            workers = default_workers() if size >= PARALLEL_FROM else 0
        return BlockReader(self, _Parsers(secret, self.name, workers, as_text), block)

    def _read(self, parsers: _Parsers, block: int
              ) -> Generator[list[ProposedLine] | bytes, None, None]:
        sha = hashlib.sha256()
        problems: list[LocatedInputError] = []
        bad = 0
        self.count = self.size = 0
        with self._open() as f:
            for part in parsers.map(self._blocks(f, sha, block)):
                self.count += part.records
                if part.bad:
                    bad += part.bad
                    problems.extend(part.problems[:MAX_REPORTED - len(problems)])
                elif not bad and part.rows:
                    yield part.rows
        self.digest = sha.hexdigest()
        if bad:
            raise BatchRefusedError(self.name, problems, bad > len(problems))
        if not self.count:
            raise InputError(_("{file}: no payment lines to check (the file is empty)").format(
                file=self.name))

    def _blocks(self, f: IO[bytes], sha: hashlib._Hash, size: int
                ) -> Iterator[tuple[int, bytes]]:
        """(first line number, bytes of whole lines) of the file, ``size`` bytes or so at
        a time; the bytes go into ``sha`` and the progress as they are read."""
        n, rest = 1, b""
        while True:
            data = f.read(size)
            if not data:
                if rest:
                    yield n, rest
                return
            sha.update(data)
            self.size += len(data)
            if self.progress is not None:
                self.progress(len(data))
            data = rest + data
            cut = data.rfind(b"\n") + 1
            if not cut:  # no line ends in it yet: a very long line
                rest = data
                continue
            data, rest = data[:cut], data[cut:]
            yield n, data
            n += data.count(b"\n")

    def reread(self) -> Reread:
        """The file opened again to give the original text of chosen lines."""
        return Reread(self)


class BlockReader:
    """The parts of a :class:`ProposedFile` (:meth:`ProposedFile.reader`): iterate once,
    inside ``with``."""

    def __init__(self, batch: ProposedFile, parsers: _Parsers, block: int) -> None:
        self._parsers = parsers
        self._parts = batch._read(parsers, block)

    def __iter__(self) -> Iterator[list[ProposedLine] | bytes]:
        return self._parts

    def __enter__(self) -> BlockReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._parts.close()
        self._parsers.close()


class _Parsers:
    """Parses blocks of lines, in worker processes or (``workers`` 0) in this one, and
    gives the parts back in the order of the blocks."""

    def __init__(self, secret: bytes, name: str, workers: int, as_text: bool) -> None:
        self.name, self.as_text = name, as_text
        self.pseudo = Pseudonymizer(secret)
        self.pool: ProcessPoolExecutor | None = None
        self.workers = workers
        if workers > 0:
            # spawned, not forked: the parent holds a database connection and may run
            # threads; a worker needs the secret and the reader's language only
            self.pool = ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker, initargs=(secret, current_language()))
            for _n in range(workers):  # started now, not at the first block
                self.pool.submit(int)

    def map(self, blocks: Iterator[tuple[int, bytes]]) -> Iterator[Part]:
        if self.pool is None:
            for first, data in blocks:
                yield _parse_part(self.pseudo, self.name, first, data, self.as_text)
            return
        ahead: deque[Future[Part]] = deque()
        for first, data in blocks:  # a few blocks ahead per worker: memory stays flat
            ahead.append(self.pool.submit(_worker_part, self.name, first, data,
                                          self.as_text))
            if len(ahead) > 2 * self.workers:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


class Reread:
    """The original text of lines of a :class:`ProposedFile`, asked for in ascending line
    order (:meth:`text`); :meth:`close` reads the rest and raises :class:`InputError` when
    the bytes are no longer those :meth:`ProposedFile.lines` read (the file changed while
    it was checked)."""

    def __init__(self, batch: ProposedFile) -> None:
        self.batch = batch
        self._sha = hashlib.sha256()
        self._f = batch._open()
        self._n = 0

    def text(self, line: int) -> str:
        """Line ``line`` as sent (without its line end); '' past the end of the file."""
        while self._n < line:
            raw = self._f.readline()
            if not raw:
                return ""
            self._sha.update(raw)
            self._n += 1
            if self._n == line:
                return raw.decode("utf-8", "replace").rstrip("\r\n")
        return ""

    def close(self) -> None:
        with self._f:
            while raw := self._f.read(1 << 20):
                self._sha.update(raw)
        if self._sha.hexdigest() != self.batch.digest:
            raise InputError(_("{file} changed while it was checked (its SHA-256 is no longer "
                               "{digest}); check it again").format(file=self.batch.name,
                                                                   digest=self.batch.digest))


__all__ = ["BLOCK", "KIND", "PARALLEL_FROM", "BlockReader", "ProposedFile", "ProposedLine",
           "Reread", "default_workers"]
