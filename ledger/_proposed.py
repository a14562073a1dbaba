"""Proposed records: a JSON Lines file read and validated the way ingest reads it, its
personal fields turned into pseudonyms, and nothing of it stored.

``bfa precheck`` checks a payment batch before it goes to the bank (INTERCHANGE §12.4).
This module owns the reading: each line is parsed strictly and validated against the
interchange models exactly as :class:`ledger._ingest.Ingester` does (the same parser, the
same models, the same ``file:line: field: message`` problems), must be a
``business.benefit_payment``, and comes out as a :class:`ProposedLine` holding the
pseudonyms of ``person_id`` and ``account`` under the ledger secret (FORMAT.md §4.1) —
never their clear values. The SHA-256 of the file's bytes is taken as it is read.

A file with any bad line is refused whole (:class:`BatchRefusedError`, after every line
was read, the first 100 problems named), so a caller that loads lines as they come does
so inside a transaction it rolls back.

Example::

    from ledger import ProposedFile
    batch = ProposedFile(Path("batch.jsonl"))
    for line in batch.lines(secret):        # ProposedLine(line=1, record_id="BP-1", …)
        ...
    print(batch.digest, batch.count)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, NamedTuple

from ledger._errors import BatchRefusedError, InputError, LocatedInputError
from ledger._ingest import MAX_REPORTED, parse_line
from ledger._privacy import Pseudonymizer
from schemas import N_
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
        pseudo = Pseudonymizer(secret)
        sha = hashlib.sha256()
        problems: list[LocatedInputError] = []
        bad = 0
        self.count = self.size = 0
        with self._open() as f:
            for n, raw in enumerate(f, 1):
                sha.update(raw)
                self.size += len(raw)
                if self.progress is not None:
                    self.progress(len(raw))
                try:
                    line = self._parse(pseudo, n, raw)
                except LocatedInputError as e:
                    bad += 1
                    if len(problems) < MAX_REPORTED:
                        problems.append(e)
                    continue
                if line is not None:
                    self.count += 1
                    if not bad:
                        yield line
        self.digest = sha.hexdigest()
        if bad:
            raise BatchRefusedError(self.name, problems, bad > len(problems))
        if not self.count:
            raise InputError(_("{file}: no payment lines to check (the file is empty)").format(
                file=self.name))

    def _parse(self, pseudo: Pseudonymizer, n: int, raw: bytes) -> ProposedLine | None:
        name = self.name
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise LocatedInputError.of(name, n, "line", N_("not valid UTF-8 at byte {offset}"),
                                       offset=e.start) from e
        text = text.rstrip("\r\n")
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

    def reread(self) -> Reread:
        """The file opened again to give the original text of chosen lines."""
        return Reread(self)


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


__all__ = ["KIND", "ProposedFile", "ProposedLine", "Reread"]
