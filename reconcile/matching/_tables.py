"""Derived tables of the reconciler (``rc_*``), one SQLAlchemy Core schema for both backends.

The reconciler owns these tables; they are *derived*: everything in them is re-decoded
from ledger entries (``ledger._schema.entries``) by :mod:`reconcile.matching._refresh`, so they
may be dropped and rebuilt at any time. Alembic revision ``0002`` creates exactly these
tables (with the ledger's naming convention, so both backends get the same names).

Conventions kept in every table:

- money is integer fen (``BIGINT``), never float: ``Decimal("3456.78")`` is ``345678``;
- dates are *epoch days* (``INTEGER`` days since 1970-01-01), so "30 days after the
  due date" is integer arithmetic, identical on SQLite and PostgreSQL;
- personal fields hold the ledger's pseudonyms (``ps1:...``), never clear values;
- rows are keyed by the entry's ``seq``; ``record_id`` is the interchange id;
- every record table carries ``superseded`` (a later version corrects it), and
  ``rc_records.current_seq`` is the ``seq`` of the latest version, so matching joins
  integers, not ids through the correction chain.

These tables hold the state of incremental runs (:mod:`reconcile.matching._incremental`):
``rc_findings`` (the rows each matching statement returned, per root item, before they
are judged by date), ``rc_open`` (current money events not fully settled by
allocations), ``rc_matched`` (the heuristic matches of the last run: the open events and
unallocated movements in no pair are re-checked every run, a pair only when something
near it changed), ``rc_dirty`` (older records whose version status a refresh changed
since the last run) and ``rc_month_sums`` (the income account's sums per month, kept
up to date by delta). Revisions ``0005`` and ``0006`` add them; ``0007`` changes indexes.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from ledger import NAMING

metadata = MetaData(naming_convention=NAMING)

WATERMARK_KEY = "reconcile_seq"
"""Key in the ledger's ``meta`` table: the next entry ``seq`` the refresh will decode."""

CHECKED_KEY = "reconcile_checked"
"""Key in ``meta``: the stored findings are up to date for entries below this ``seq``."""

RECORDS_KEY = "reconcile_records"
"""Key in ``meta``: how many ``rc_records`` rows the last run covered."""

RULES_KEY = "reconcile_rules"
"""Key in ``meta``: digest of the rules the stored findings were computed with."""

RC_TABLES = (
    "rc_records", "rc_events", "rc_movements", "rc_allocations", "rc_vouchers", "rc_voucher_refs",
    "rc_person_events", "rc_findings", "rc_open", "rc_dirty", "rc_month_sums", "rc_matched",
)

records = Table(
    "rc_records",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("domain", String(16), nullable=False),
    Column("kind", String(48), nullable=False),
    Column("record_id", String(128), nullable=False),
    Column("region", String(6), nullable=False),
    Column("occurred_at", String(40), nullable=False),
    Column("occurred_day", Integer, nullable=False),
    Column("corrects", String(128), nullable=True),
    Column("superseded", Boolean, nullable=False),
    # the id of the latest version (itself when not superseded), same domain
    Column("current_id", String(128), nullable=False),
    Column("entry_hash", String(64), nullable=False),  # hex, the entry's hash (break evidence)
    Column("current_seq", BigInteger, nullable=False),  # seq of the current_id record
    # id first: serves the look-ups by id alone as well (revision 0007)
    UniqueConstraint("record_id", "domain"),
    # partial: only corrections have ``corrects``; every look-up names a value
    Index("ix_rc_records_domain_corrects", "domain", "corrects",
          postgresql_where=text("corrects IS NOT NULL"),
          sqlite_where=text("corrects IS NOT NULL")),
    Index("ix_rc_records_domain_current_id", "domain", "current_id"),
    # the as-of cut-off counts the records after a day (revision 0020)
    Index("ix_rc_records_occurred_day", "occurred_day"),
    # partial: the few bank statements among millions of records (revision 0007)
    Index("ix_rc_records_statement", "kind", postgresql_where=text("kind = 'statement'"),
          sqlite_where=text("kind = 'statement'")),
)

events = Table(
    "rc_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("record_id", String(128), nullable=False),
    Column("kind", String(48), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("due_day", Integer, nullable=True),
    # due_day when the kind has one, else the occurred_at date: windows count from here
    Column("anchor_day", Integer, nullable=False),
    Column("party", String(40), nullable=True),  # employer_party or payer_id pseudonym
    Column("person", String(40), nullable=True),  # person_id pseudonym
    Column("account", String(40), nullable=True),  # account pseudonym
    Column("insurance", String(16), nullable=True),
    Column("period", String(7), nullable=True),
    Column("superseded", Boolean, nullable=False),  # copy of rc_records.superseded
    # benefit_payment: ``benefit`` (v1.1; NULL: the recurring benefit) (revision 0017)
    Column("benefit", String(128), nullable=True),
    # transfer_out: ``to_region``; transfer_in: ``from_region`` (revision 0017)
    Column("other_region", String(6), nullable=True),
    Column("region", String(6), nullable=True),  # the record's region (revision 0017)
    Index("ix_rc_events_person", "person"),
)

movements = Table(
    "rc_movements",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("record_id", String(128), nullable=False),
    Column("kind", String(48), nullable=False),
    Column("settles", String(48), nullable=True),  # the event kind this movement kind settles
    Column("amount_fen", BigInteger, nullable=False),
    Column("value_day", Integer, nullable=False),
    Column("value_month", String(7), nullable=False),  # YYYY-MM of value_date
    Column("bank_ref", String(128), nullable=False),
    Column("payer", String(40), nullable=True),  # payer_id pseudonym (party class)
    Column("payee_account", String(40), nullable=True),  # payee_account pseudonym
    Column("fund_account", String(16), nullable=True),
    Column("from_account", String(16), nullable=True),  # sweeps
    Column("to_account", String(16), nullable=True),  # sweeps
    Column("returns", String(128), nullable=True),
    Column("allocated", Boolean, nullable=False),
    Column("superseded", Boolean, nullable=False),  # copy of rc_records.superseded
    Column("allocated_fen", BigInteger, nullable=False),  # sum of its own allocations
    Column("to_region", String(6), nullable=True),  # a transfer's ``to_region`` (0018)
    Index("ix_rc_movements_record_id", "record_id"),
    # partial: the current unallocated movements, each run's re-check (revision 0008)
    Index("ix_rc_movements_unallocated", "amount_fen", "seq",
          postgresql_where=text("allocated IS false AND superseded IS false"),
          sqlite_where=text("allocated IS 0 AND superseded IS 0")),
)

allocations = Table(
    "rc_allocations",
    metadata,
    Column("movement_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("pos", Integer, primary_key=True, autoincrement=False),
    Column("movement_id", String(128), nullable=False),
    Column("event_id", String(128), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    # seq of the current version of the business record ``event_id`` names when that is a
    # money event (NULL: none in the ledger yet, or not an event with an amount); kept up
    # to date by the refresh as records arrive and are corrected
    Column("event_seq", BigInteger, nullable=True),
    # copies from the movement, so that settlement sums read this table alone
    Column("kind", String(48), nullable=False),
    Column("value_day", Integer, nullable=False),
    Column("superseded", Boolean, nullable=False),
    Index("ix_rc_allocations_event_id", "event_id"),
    Index("ix_rc_allocations_event_seq", "event_seq"),
)

vouchers = Table(
    "rc_vouchers",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("record_id", String(128), nullable=False),
    Column("kind", String(48), nullable=False),
    Column("amount_fen", BigInteger, nullable=True),
    Column("superseded", Boolean, nullable=False),  # copy of rc_records.superseded
    Column("n_refs", Integer, nullable=False),  # how many distinct ids its refs name
)

voucher_refs = Table(
    "rc_voucher_refs",
    metadata,
    Column("voucher_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ref_id", String(128), primary_key=True),
    Column("voucher_id", String(128), nullable=False),
    # seq of the current version of the business / the finance record ``ref_id`` names
    # (NULL: none), kept up to date by the refresh like ``rc_allocations.event_seq``
    Column("business_seq", BigInteger, nullable=True),
    Column("finance_seq", BigInteger, nullable=True),
    Index("ix_rc_voucher_refs_ref_id", "ref_id"),
    Index("ix_rc_voucher_refs_business_seq", "business_seq"),
    Index("ix_rc_voucher_refs_finance_seq", "finance_seq"),
)

person_events = Table(
    "rc_person_events",
    metadata,
    # benefit approvals, terminations, enrolments and certifications: the person's status
    # the domain and entitlement rules compare with
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("record_id", String(128), nullable=False),
    Column("kind", String(48), nullable=False),
    Column("person", String(40), nullable=False),  # person_id pseudonym
    Column("insurance", String(16), nullable=False),  # a termination may say "all"
    Column("account", String(40), nullable=True),  # approval: account pseudonym
    # approval: start_period; termination: the first period it no longer covers;
    # enrolment: the month of effective_date; certification: the month of certified_on
    Column("period", String(7), nullable=True),
    # termination, enrolment: effective_date; certification: certified_on
    Column("effective_day", Integer, nullable=True),
    Column("superseded", Boolean, nullable=False),  # copy of rc_records.superseded
    Column("amount_fen", BigInteger, nullable=True),  # approval: monthly_amount (0017)
    Column("region", String(6), nullable=True),  # the record's region (revision 0017)
    Column("occurred_day", Integer, nullable=True),  # the record's (revision 0017)
    Index("ix_rc_person_events_person", "person"),
)

findings = Table(
    "rc_findings",
    metadata,
    # what one matching statement returned for one root item (event, movement, record,
    # voucher seq; or a group key), as a JSON array per row; judged by date every run
    Column("rule", String(32), primary_key=True),
    Column("root", String(200), primary_key=True),
    Column("pos", Integer, primary_key=True, autoincrement=False),
    Column("row", Text, nullable=False),
)

open_events = Table(
    "rc_open",
    metadata,
    # current money events whose allocations do not settle them (those in no rc_matched
    # pair are re-checked every run)
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
)

matched = Table(
    "rc_matched",
    metadata,
    # the heuristic matches of the last run: an unallocated movement and the one open
    # event it settles, each in at most one pair (re-checked only when either, or a
    # possible new candidate of either, is in a run's scope)
    Column("m_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("e_seq", BigInteger, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    UniqueConstraint("e_seq"),
)

dirty = Table(
    "rc_dirty",
    metadata,
    # records written before the last run whose superseded / current version changed since
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("was_current", Boolean, nullable=False),  # it was current, now it is superseded
)

month_sums = Table(
    "rc_month_sums",
    metadata,
    # the income account's current movements per value month (income_netting), kept by delta
    Column("month", String(7), primary_key=True),
    Column("in_fen", BigInteger, nullable=False),
    Column("out_fen", BigInteger, nullable=False),
    Column("n", BigInteger, nullable=False),
)
