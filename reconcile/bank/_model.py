"""The neutral statement model both bank-file parsers produce (camt.053 and MT940).

Amounts are exact :class:`~decimal.Decimal` values as the bank wrote them (entry amounts
positive, direction in ``credit``; balances signed: a debit balance is negative).
Nothing here knows about the ledger; ``reconcile.bank._records`` maps it to records.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from ledger import printable


def quoted(text: str, limit: int = 40) -> str:
    """``text`` from a bank file, quoted for a message: control characters escaped, and
    cut after ``limit`` characters (a hostile file's 5 MB id must not become the error)."""
    return repr(printable(text if len(text) <= limit else text[:limit] + "…"))


@dataclass(frozen=True, slots=True)
class Balance:
    """A booked balance: signed amount (debit balances are negative), currency, date."""

    amount: Decimal
    currency: str
    date: date


@dataclass(frozen=True, slots=True)
class StatementEntry:
    """One statement entry (camt.053 ``Ntry``, MT940 ``:61:`` with its ``:86:``)."""

    position: int
    """1-based position of the entry within its statement."""
    amount: Decimal
    """Positive amount; see ``credit``."""
    currency: str
    credit: bool
    """``True`` for a credit (``CRDT``, ``C``/``RC``), ``False`` for a debit."""
    value_date: date | None
    booking_date: date | None
    acct_svcr_ref: str | None = None
    """camt.053 ``AcctSvcrRef``; MT940 the bank reference after ``//`` in ``:61:``."""
    entry_ref: str | None = None
    """camt.053 ``NtryRef``; MT940 the customer reference in ``:61:`` (unless ``NONREF``)."""
    party_id: str | None = None
    """Debtor's organisation/private id (who paid a credit)."""
    counter_account: str | None = None
    """Creditor's account (where a debit went)."""
    booked: bool = True
    """camt.053 ``Sts`` is ``BOOK`` (MT940 lines are always booked)."""


@dataclass(frozen=True, slots=True)
class Statement:
    """One bank statement of one account."""

    id: str
    account: str
    currency: str | None
    opening: Balance | None
    closing: Balance | None
    entries: tuple[StatementEntry, ...]
    sequence: str | None = None
    """Sequence number: camt.053 ``ElctrncSeqNb``; MT940 ``:28C:`` (statement/sequence)."""
    legal_sequence: str | None = None
    """camt.053 ``LglSeqNb``."""
    created_at: str | None = None
    """camt.053 ``CreDtTm`` as written."""

    def entries_total(self) -> Decimal:
        """Net of the entries: credits minus debits."""
        return sum((e.amount if e.credit else -e.amount for e in self.entries), Decimal(0))

    def balances_add_up(self) -> bool | None:
        """Opening + entries == closing; ``None`` when a balance is missing."""
        if self.opening is None or self.closing is None:
            return None
        return self.opening.amount + self.entries_total() == self.closing.amount
