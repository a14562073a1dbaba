"""The error hierarchy every layer raises, each with a message a user can act on.

Every error derives from :class:`BfaError`. The CLI maps error *classes* to exit
codes in one place (``cli/_exit.py``); library code never chooses an exit code.

- :class:`InputError` and its children: the command could not run on this input
  (exit 2). Messages name the file, line and field where there is one.
- :class:`IntegrityError` and its children: the ledger, a checkpoint, a proof or a
  bundle failed verification (exit 3).
- :class:`ConfigError`: keys, home directory or database unusable (exit 2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ledger._verify import Problem

import re

from schemas import gettext as _


class BfaError(Exception):
    """Root of every error this project raises on purpose.

    ``str(err)`` is a complete, one-line, user-facing message, in the reader's language
    (``schemas.gettext``) unless the same text is also kept or written as data — a
    verification problem, a reject file's reason, a proof's or bundle's verdict — which
    stays English.
    """


class ConfigError(BfaError):
    """The home directory, keys or database URL cannot be used."""


class DutyError(ConfigError):
    """The acting role does not hold the duty a step needs (FORMAT.md §8.3).

    ``refused``: the library checked the duty itself (before the database would refuse),
    so the command line words it as the database's refusal of the command (exit 2)."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


class InputError(BfaError):
    """Input was refused: malformed, inconsistent or conflicting."""


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """``text`` with control characters and line separators as backslash escapes."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class LocatedInputError(InputError):
    """An input problem at a known place: ``file:line: field: message``.

    ``reason`` is the message in English: the reject file keeps it as data for programs
    (FORMAT.md §9.4). ``str()`` shows ``shown`` instead when given: the same message in the
    reader's language (:meth:`of` makes both from one marked template)."""

    def __init__(self, file: str, line: int, field: str, message: str, *,
                 shown: str | None = None) -> None:
        # field names and values come from the input: control characters are escaped, so
        # that one problem stays one line wherever it is printed or logged
        self.file = file = printable(file)
        self.line = line
        self.field = field = printable(field)
        self.reason = message = printable(message)
        if shown is not None:
            message = printable(shown)
        self.shown = message
        """The message in the reader's language (``reason`` when none was given)."""
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        # rebuilt from its parts (escaping again changes nothing): a problem found by a
        # process that parses part of a file travels back to the one that reports it
        return (_located, (type(self), self.file, self.line, self.field, self.reason,
                           self.shown))

    @classmethod
    def of(cls, file: str, line: int, field: str, template: str, /,
           **params: object) -> LocatedInputError:
        """The problem ``template`` (an English message marked with ``N_``) filled with
        ``params``: in English as its ``reason``, in the reader's language as shown."""
        return cls(file, line, field, template.format(**params),
                   shown=_(template).format(**params))


def _located(cls: type[LocatedInputError], file: str, line: int, field: str, reason: str,
             shown: str) -> LocatedInputError:
    return cls(file, line, field, reason, shown=shown)


class NotFoundError(InputError):
    """A record, entry or checkpoint that was asked for does not exist."""


class IntegrityError(BfaError):
    """Verification failed: the data is not what was signed or chained."""


class MerkleProofError(IntegrityError):
    """A Merkle inclusion or consistency proof does not verify."""


class SignatureError(IntegrityError):
    """A signed note carries no valid signature by the expected key."""


class FormatError(InputError):
    """A note, checkpoint, key or proof text is not well formed."""


class NotCoveredError(BfaError):
    """The entry exists but no signed checkpoint covers it yet (a problem, exit 1)."""


class VoucherMismatchError(InputError):
    """A voucher file is missing or differs from its record (``field`` says which)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class BatchRefusedError(InputError):
    """A file was refused as a whole; ``problems`` lists why (first ones)."""

    def __init__(self, file: str, problems: list[LocatedInputError], more: bool) -> None:
        self.problems = problems
        n = f"{len(problems)}{'+' if more else ''}"
        first = str(problems[0]) if problems else _("unknown problem")
        super().__init__(_("{file}: batch refused, nothing appended ({count} problem(s)); "
                           "first: {first}").format(file=file, count=n, first=first))


class LedgerIntegrityError(IntegrityError):
    """The ledger fails verification; ``problem`` (a ``ledger.Problem``) is the first thing
    found."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(problem.message)
